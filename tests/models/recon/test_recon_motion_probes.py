"""The motion stage's probe refinement (``motion.probe_steps``): the probes are one physical pose per view
for the whole cine, so every frame's masks inform them (analytic ellipsoid prior)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recon_analytic import analytic_prior

from models.geometry.frames import ImagePlane, ProbePose, nominal_plane
from models.recon.pipeline import ReconConfig, reconstruct_study
from models.recon.result import ReconResult
from tests.models.recon.conftest import SPACING, ellipsoid_study, turned_plane

SHAPE = (128, 104)
CYCLE = [(22.0 - 3.0 * s, 18.0 - 2.5 * s, 42.0 - 3.0 * s) for s in np.sin(np.pi * np.arange(6) / 5)]
CPU = torch.device("cpu")


PLANES = {v: nominal_plane(v, SHAPE, SPACING) for v in ("A4C", "A2C", "A3C")}
TRUE = {**PLANES, "A2C": turned_plane(PLANES["A2C"], tilt_deg=5.0, offset_mm=(3.0, 2.0), pivot_z_mm=42.0)}


def _reconstruct(probe_steps: int) -> ReconResult:
    """The nominal planes as the start, probes held in the anchor stage (so only the motion stage can
    move them), A4C anchored."""
    cfg = ReconConfig.from_profile("smoke", pose_init="nominal", gauge="anchor").with_overrides(
        [("anchor.probe_steps", "0"), ("motion.steps", "300"), ("motion.min_steps", "300"),
         ("motion.probe_steps", str(probe_steps)), ("anchor.probe_sigma_fs_deg", "2")])
    return reconstruct_study(ellipsoid_study(CYCLE, planes=TRUE, shape=SHAPE), analytic_prior(), cfg, CPU)


def _placement_error_mm(pose: ProbePose, study_mask: np.ndarray) -> float:
    """Mean distance (mm) between where ``pose`` and the true A2C pose put the mask's pixels."""
    rows, cols = np.nonzero(study_mask)
    fitted = ImagePlane(SHAPE, SPACING, pose).pixel_to_world(rows, cols)
    return float(np.linalg.norm(fitted - TRUE["A2C"].pixel_to_world(rows, cols), axis=1).mean())


@pytest.mark.slow
def test_the_motion_stage_moves_a_wrong_probe_towards_the_truth_and_a_held_one_not_at_all(one_thread: None) -> None:
    mask = ellipsoid_study(CYCLE[:1], planes=TRUE, shape=SHAPE).views["A2C"].masks[0]
    start = _placement_error_mm(PLANES["A2C"].pose, mask)
    held = {f.view: f.pose for f in _reconstruct(0).view_fits}
    fitted = {f.view: f.pose for f in _reconstruct(2).view_fits}
    np.testing.assert_allclose(held["A2C"].rotation, PLANES["A2C"].pose.rotation, atol=1e-5)
    np.testing.assert_allclose(fitted["A4C"].translation, PLANES["A4C"].pose.translation, atol=1e-4)  # the gauge
    assert start > 3.0
    assert _placement_error_mm(fitted["A2C"], mask) < 0.5 * start


def test_the_no_probe_ablation_holds_the_probes_in_the_motion_stage_too(one_thread: None) -> None:
    cfg = ReconConfig.from_profile("smoke", pose_init="nominal").with_ablation("no-probe").with_overrides(
        [("motion.probe_steps", "2")])
    result = reconstruct_study(ellipsoid_study(CYCLE[:3], planes=TRUE, shape=SHAPE), analytic_prior(), cfg, CPU)
    for fit in result.view_fits:
        start = result.extras["initial_poses"][fit.view]
        np.testing.assert_allclose(fit.pose.rotation, np.asarray(start["rotation"]), atol=1e-5)
        np.testing.assert_allclose(fit.pose.translation, np.asarray(start["translation_mm"]), atol=1e-4)
