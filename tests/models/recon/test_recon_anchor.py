"""ED test-time optimisation with the analytic ellipsoid prior: volume and probe recovery."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from recon_analytic import analytic_prior, ellipsoid_volume_ml

from models.geometry.frames import ImagePlane, ProbePose, nominal_plane, rotation_from_axis_angle
from models.recon.pipeline import ReconConfig, reconstruct_study
from tests.models.recon.conftest import SPACING, ellipsoid_study

SHAPE = (160, 128)
TRUE_AXES = (25.0, 19.0, 45.0)


def _perturb(plane: ImagePlane, tilt_deg: float, offset_mm: tuple[float, float]) -> ImagePlane:
    """Rotate ``plane`` in-plane (about its normal through mid-cavity) and shift it in-plane."""
    pose = plane.pose
    rot = rotation_from_axis_angle(pose.normal, math.radians(tilt_deg))
    pivot = np.array([0.0, 0.0, 45.0])
    t = rot @ (pose.translation - pivot) + pivot + pose.rotation[:, :2] @ np.asarray(offset_mm)
    return ImagePlane(plane.shape, plane.spacing_mm, ProbePose(rot @ pose.rotation, t, pose.scale))


@pytest.mark.parametrize("pose_init", ["nominal", "mask", "base"])
def test_ellipsoid_volume_within_two_percent(one_thread: None, pose_init: str) -> None:
    study = ellipsoid_study([TRUE_AXES, TRUE_AXES], shape=SHAPE)
    cfg = ReconConfig.from_profile("default", ed_only=True, pose_init=pose_init)
    result = reconstruct_study(study, analytic_prior(), cfg, torch.device("cpu"))
    truth = ellipsoid_volume_ml(TRUE_AXES)
    assert result.n_frames == 1
    assert result.edv_ml == pytest.approx(truth, rel=0.02)
    assert all(fit.dice_ed > 0.97 for fit in result.view_fits)


def test_probe_recovery_of_a_perturbed_a2c(one_thread: None) -> None:
    planes = {v: nominal_plane(v, SHAPE, SPACING) for v in ("A4C", "A2C", "A3C")}
    true_a2c = _perturb(planes["A2C"], tilt_deg=6.0, offset_mm=(4.0, 3.0))
    planes_true = {**planes, "A2C": true_a2c}
    study = ellipsoid_study([TRUE_AXES, TRUE_AXES], planes=planes_true, shape=SHAPE)
    # the nominal start leaves the in-plane error to the fit: as wide a prior in plane as out of it;
    # this A2C is not foreshortened, and a free tilt about its base would share the out-of-plane
    # correction with the tilt about mid-cavity (slower to converge): a tight foreshortening prior
    cfg = ReconConfig.from_profile("default", ed_only=True, pose_init="nominal", gauge="anchor").with_overrides(
        [("anchor.probe_sigma_inplane_deg", "10"), ("anchor.probe_sigma_out_mm", "5"),
         ("anchor.probe_sigma_fs_deg", "2")])
    result = reconstruct_study(study, analytic_prior(), cfg, torch.device("cpu"))
    fitted = {fit.view: fit.pose for fit in result.view_fits}
    # the anchored view did not move
    np.testing.assert_allclose(fitted["A4C"].translation, planes["A4C"].pose.translation, atol=1e-4)
    # A2C: every cavity pixel lands within 1 mm of where the true pose puts it (start: up to ~8 mm)
    rows, cols = np.nonzero(study.views["A2C"].masks[0])
    fit_plane = ImagePlane(SHAPE, SPACING, fitted["A2C"])
    err = np.linalg.norm(fit_plane.pixel_to_world(rows, cols) - true_a2c.pixel_to_world(rows, cols), axis=1)
    start = np.linalg.norm(planes["A2C"].pixel_to_world(rows, cols) - true_a2c.pixel_to_world(rows, cols), axis=1)
    assert start.mean() > 4.0
    assert err.mean() < 1.0, f"mean pixel placement error {err.mean():.2f} mm"
    cos = (np.trace(fitted["A2C"].rotation.T @ true_a2c.pose.rotation) - 1.0) / 2.0
    # 6° → about 1.5°: the default profile's plateau stop (~370 steps) comes while its cosine
    # decay (700 steps) still leaves ~40 % of the probe learning rate; placement is what the masks see.
    assert math.degrees(math.acos(min(cos, 1.0))) < 2.0
    assert result.edv_ml == pytest.approx(ellipsoid_volume_ml(TRUE_AXES), rel=0.03)
