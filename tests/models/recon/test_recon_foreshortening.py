"""The pose model for real probes: base-anchored initial poses, the foreshortening tilt about the
lateral axis through the base, per-axis probe priors and the multi-start (analytic ellipsoids)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from recon_analytic import analytic_prior, ellipsoid_mask, ellipsoid_volume_ml

from models.cohort.simulator import ProbePerturbation, perturbed_pose
from models.geometry.frames import ImagePlane, nominal_plane, nominal_pose
from models.recon.anchor import AnchorConfig, probe_penalty_per_view
from models.recon.pipeline import ReconConfig, reconstruct_study
from models.recon.poses import apex_miss_mm, foreshortening_guess_rad, initial_poses, mask_axis
from models.recon.rendering import ProbeParams
from tests.models.recon.conftest import SPACING, ellipsoid_study

SHAPE = (180, 140)
AXES = (24.0, 21.0, 45.0)  # semi-axes (mm); the ellipsoid's top (its "base" in a mask) is at z = 90
TOP = np.array([0.0, 0.0, 2 * AXES[2]])


def _foreshortened(view: str, angle_rad: float) -> ImagePlane:
    """``view``'s nominal plane tilted by ``angle_rad`` about its lateral axis through the top."""
    pert = ProbePerturbation(foreshortening_mm=float(TOP[2] * math.sin(angle_rad)), foreshortening_pivot_mm=TOP[2])
    return ImagePlane(SHAPE, SPACING, perturbed_pose(view, pert, SHAPE, SPACING))


@pytest.mark.parametrize("theta", [0.05, 0.2, 0.45])
def test_foreshortening_guess_inverts_the_half_ellipsoid_chord(theta: float) -> None:
    length, radius = 90.0, 25.0
    visible = 1.0 / math.sqrt(math.sin(theta) ** 2 / radius**2 + math.cos(theta) ** 2 / length**2)
    assert foreshortening_guess_rad(visible, length, radius) == pytest.approx(theta, abs=1e-9)
    assert foreshortening_guess_rad(length, length, radius) == 0.0


def test_tilt_residual_is_the_simulators_foreshortening_about_the_base() -> None:
    """φ about the base is exactly the simulator's foreshortening rotation: one degree of freedom,
    no coupled translation (so the prior counts it once), whatever the general residual's pivot."""
    theta = math.radians(9.0)
    pose0 = nominal_pose("A2C", SHAPE, SPACING)
    probes = ProbeParams([pose0], np.array([[0.0, 0.0, 45.0]]), anchored=[False], bases_mm=TOP[None])
    probes.set_foreshortening(0, theta)
    fitted = probes.poses()[0]
    sim = _foreshortened("A2C", theta).pose
    np.testing.assert_allclose(fitted.rotation, sim.rotation, atol=1e-6)
    np.testing.assert_allclose(fitted.translation, sim.translation, atol=1e-4)
    assert apex_miss_mm(fitted, np.zeros(3)) == pytest.approx(TOP[2] * math.sin(theta), abs=1e-3)
    # the per-axis prior sees the tilt on its own axis only
    cfg = AnchorConfig(probe_sigma_fs_deg=9.0, probe_sigma_tilt_deg=1.0, probe_sigma_deg=1.0,
                       probe_sigma_inplane_deg=1.0)
    assert float(probe_penalty_per_view(probes, cfg).detach()[0]) == pytest.approx(1.0, rel=1e-4)


def test_base_init_keeps_the_base_and_proposes_the_tilt() -> None:
    theta = math.radians(14.0)
    planes = {"A4C": nominal_plane("A4C", SHAPE, SPACING), "A2C": _foreshortened("A2C", theta)}
    masks = [ellipsoid_mask(AXES, planes[v]) for v in planes]
    init = initial_poses(list(planes), masks, [SPACING, SPACING], "base")
    assert init.longest == 0
    assert init.length_mm == pytest.approx(TOP[2], abs=3.0)  # the base midpoint averages the basal 3 mm
    np.testing.assert_allclose(init.pivots, np.tile(np.array([0.0, 0.0, init.length_mm]), (2, 1)), atol=1e-6)
    short = mask_axis(masks[1], SPACING)
    assert short.length_mm < init.length_mm - 3.0  # the tilted plane shows a shorter cavity
    assert init.candidates_rad[0] == [0.0]
    c = init.candidates_rad[1]
    assert len(c) == 3 and c[0] == 0.0 and c[1] == -c[2] and math.degrees(c[1]) > 5.0
    # the "mask" initialisation instead puts the visible apex at the true apex
    apex_first = initial_poses(list(planes), masks, [SPACING, SPACING], "mask")
    assert apex_first.poses[1].plane_to_world(short.apex)[2] == pytest.approx(0.0, abs=1e-6)


def test_a_known_foreshortening_tilt_is_recovered(one_thread: None) -> None:
    """A2C tilted 10° about its lateral axis through the base (the apex 15.6 mm out of its plane):
    the fitted plane misses the reconstructed apex by about that much, and the volume holds."""
    theta = math.radians(10.0)
    planes = {v: nominal_plane(v, SHAPE, SPACING) for v in ("A4C", "A3C")}
    planes["A2C"] = _foreshortened("A2C", theta)
    study = ellipsoid_study([AXES], planes=planes, shape=SHAPE)
    cfg = ReconConfig.from_profile("default", ed_only=True)
    result = reconstruct_study(study, analytic_prior(), cfg, torch.device("cpu"))
    fits = {f.view: f for f in result.view_fits}
    expected = TOP[2] * math.sin(theta)
    assert fits["A2C"].foreshortening_mm == pytest.approx(expected, abs=3.0)
    assert fits["A4C"].foreshortening_mm is not None and fits["A4C"].foreshortening_mm < 2.5
    chosen = result.extras["anchor"]["foreshortening_chosen_deg"]["A2C"]
    assert abs(chosen) > 5.0  # the multi-start kept a tilted start
    assert result.edv_ml == pytest.approx(ellipsoid_volume_ml(AXES), rel=0.03)
    assert min(f.dice_ed for f in result.view_fits) > 0.97


def test_a_static_study_is_reconstructed_in_3d(one_thread: None) -> None:
    """One frame per view: a 3D result (EDV and a mesh), named ED-only; declared ES it is ES-only."""
    from models.export.report import build_report
    from models.study import Study

    still = ellipsoid_study([AXES], shape=SHAPE)
    assert still.is_static
    cfg = ReconConfig.from_profile("smoke")
    result = reconstruct_study(still, analytic_prior(), cfg, torch.device("cpu"))
    assert result.n_frames == 1 and result.vertices.shape[0] == 1 and len(result.faces) > 0
    assert result.extras["single_phase"] == "ED"
    assert any("ED only" in w and "static study" in w for w in result.warnings)
    report = build_report(result, {})
    assert report["edv_ml"] == pytest.approx(result.edv_ml) and report["esv_ml"] is None
    es_still = Study(dict(still.views), {"static_phase": "ES"})
    es_result = reconstruct_study(es_still, analytic_prior(), cfg, torch.device("cpu"))
    assert es_result.extras["single_phase"] == "ES"
    es_report = build_report(es_result, {})
    assert es_report["edv_ml"] is None and es_report["esv_ml"] == pytest.approx(es_result.edv_ml)
    assert es_report["ef_percent"] is None
