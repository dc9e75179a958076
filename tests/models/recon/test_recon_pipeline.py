"""reconstruct_study end to end with the analytic prior: contract, 4D volumes, determinism, control."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from recon_analytic import analytic_prior, ellipsoid_volume_ml

from models.errors import ErrorCode, InputError
from models.geometry.mesh import Mesh, is_watertight
from models.recon.control import ReconstructionCancelled
from models.recon.pipeline import ReconConfig, flush_denormals, reconstruct_study
from tests.models.recon.conftest import ellipsoid_study

CYCLE = [(25.0, 21.0, 45.0), (22.0, 18.5, 42.0), (20.0, 17.0, 40.0), (23.0, 19.5, 43.5)]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def result_4d() -> object:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        study = ellipsoid_study(CYCLE, shape=(160, 128))
        stages: list[tuple[str, float]] = []
        steps: list[tuple[str, int, int]] = []
        result = reconstruct_study(study, analytic_prior(), ReconConfig.from_profile("default"), CPU,
                                   progress=lambda s, f: stages.append((s, f)),
                                   steps=lambda s, d, t: steps.append((s, d, t)))
    finally:
        torch.set_num_threads(before)
    return result, stages, steps


@pytest.mark.slow
def test_result_contract_and_stage_reporting(result_4d: tuple) -> None:  # type: ignore[type-arg]
    result, stages, steps = result_4d
    t = len(CYCLE)
    assert result.vertices.shape[0] == t and result.vertices.shape[2] == 3
    assert result.volumes_ml.shape == (t,) and result.frame_times_s.shape == (t,)
    assert np.all(np.diff(result.frame_times_s) > 0) and result.frame_times_s[0] == 0.0
    assert is_watertight(Mesh(result.vertices[0], result.faces))
    assert list(dict.fromkeys(s for s, _ in stages)) == ["encode", "anchor", "motion", "mesh"]
    assert all(0.0 <= f <= 1.0 for _, f in stages) and stages[-1] == ("mesh", 1.0)
    assert {"encode", "anchor", "motion", "mesh", "total"} <= set(result.timings_s)
    # step counts for the service's sub-stage progress: encode 1, anchor/motion their optimiser steps, mesh 3
    assert steps[0] == ("encode", 0, 1) and ("encode", 1, 1) in steps
    cfg = ReconConfig.from_profile("default")
    anchor = [(d, t) for s, d, t in steps if s == "anchor"]
    assert anchor[0] == (0, cfg.anchor.max_steps) and all(t == cfg.anchor.max_steps for _, t in anchor)
    assert [d for d, _ in anchor] == sorted(d for d, _ in anchor)
    assert anchor[-1][0] <= result.extras["anchor_steps"]
    motion = [(d, t) for s, d, t in steps if s == "motion"]
    most = cfg.motion.steps + cfg.motion.decay_steps  # the fit's cap plus the decay after it stops
    assert motion[0] == (0, most) and all(d <= t == most for d, t in motion)
    assert motion[-1][0] <= result.extras["motion_steps"]
    assert [(d, t) for s, d, t in steps if s == "mesh"] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert [f.view for f in result.view_fits] == ["A4C", "A2C", "A3C"]
    assert all(0.9 < f.dice_ed <= 1.0 and 0.85 < f.dice_mean <= 1.0 for f in result.view_fits)
    assert result.extras["anchored_view"] is None  # the default gauge is soft
    json.dumps(result.model_info)  # plain JSON


@pytest.mark.slow
def test_volume_curve_follows_the_truth(result_4d: tuple) -> None:  # type: ignore[type-arg]
    result, _, _ = result_4d
    truth = np.array([ellipsoid_volume_ml(a) for a in CYCLE])
    np.testing.assert_allclose(result.volumes_ml, truth, rtol=0.05)
    assert result.ed_frame == 0 and result.es_frame == 2
    true_ef = 100 * (truth[0] - truth[2]) / truth[0]
    assert abs(result.ef_percent - true_ef) < 3.0


def test_deterministic_for_a_seed(one_thread: None) -> None:
    study = ellipsoid_study(CYCLE[:2], shape=(128, 112))
    cfg = ReconConfig.from_profile("smoke", seed=3)
    a = reconstruct_study(study, analytic_prior(), cfg, CPU)
    b = reconstruct_study(study, analytic_prior(), cfg, CPU)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.volumes_ml, b.volumes_ml)


def test_view_subset_and_ed_only(one_thread: None) -> None:
    study = ellipsoid_study(CYCLE[:2], shape=(128, 112))
    cfg = ReconConfig.from_profile("smoke", views=("A2C",), ed_only=True)
    result = reconstruct_study(study, analytic_prior(), cfg, CPU)
    assert [f.view for f in result.view_fits] == ["A2C"]
    assert result.n_frames == 1 and result.extras["anchored_view"] == "A2C"
    assert any("ED only" in w for w in result.warnings)


def test_missing_requested_view_is_an_input_error(one_thread: None) -> None:
    study = ellipsoid_study(CYCLE[:2], views=("A4C",), shape=(128, 112))
    with pytest.raises(InputError) as err:
        reconstruct_study(study, analytic_prior(), ReconConfig.from_profile("smoke", views=("A2C",)), CPU)
    assert err.value.code == ErrorCode.MISSING_VIEW


@pytest.mark.parametrize("stop_at", ["encode", "motion"])
def test_should_stop_cancels_at_a_stage_boundary(one_thread: None, stop_at: str) -> None:
    study = ellipsoid_study(CYCLE[:2], shape=(128, 112))
    seen: list[str] = []

    def progress(stage: str, fraction: float) -> None:
        seen.append(stage)

    with pytest.raises(ReconstructionCancelled) as err:
        reconstruct_study(study, analytic_prior(), ReconConfig.from_profile("smoke"), CPU, progress=progress,
                          should_stop=lambda: stop_at in seen)
    assert err.value.code == ErrorCode.CANCELLED


def test_unknown_profile_is_rejected() -> None:
    with pytest.raises(InputError):
        ReconConfig.from_profile("fastest")


def test_overrides_are_typed_like_their_fields() -> None:
    cfg = ReconConfig.from_profile("default").with_overrides(
        [("anchor.lr_decoder", "0"), ("motion.steps", "12"), ("ed_only", "true"), ("n_frames", "10"),
         ("sector_half_angle_deg", "35.5")])
    assert cfg.anchor.lr_decoder == 0.0 and isinstance(cfg.anchor.lr_decoder, float)
    assert cfg.motion.steps == 12 and cfg.ed_only is True
    assert cfg.n_frames == 10 and isinstance(cfg.n_frames, int)
    assert cfg.sector_half_angle_deg == 35.5
    assert cfg.anchor.max_steps == ReconConfig.from_profile("default").anchor.max_steps
    for bad in [("anchor.nope", "1"), ("profile.x", "1"), ("anchor", "1"), ("motion.steps", "many"),
                ("ed_only", "maybe")]:
        with pytest.raises(InputError):
            ReconConfig.from_profile("default").with_overrides([bad])


def test_paper_profile_follows_the_reference_schedule() -> None:
    cfg = ReconConfig.from_profile("paper")
    assert (cfg.anchor.max_steps, cfg.anchor.shape_steps, cfg.anchor.probe_steps) == (1500, 8, 2)
    assert (cfg.anchor.lr_probe, cfg.anchor.lr_latent, cfg.motion.lr_velocity) == (5e-3, 5e-4, 1e-3)
    assert (cfg.anchor.points_end, cfg.anchor.alpha_start, cfg.anchor.alpha_end) == (4096, 20.0, 150.0)
    assert (cfg.motion.steps, cfg.motion.frames_per_step) == (2000, 1)
    assert (cfg.motion.lambda_transport, cfg.motion.lambda_smooth, cfg.anchor.dice_weight) == (0.5, 1e-3, 0.5)


@pytest.mark.parametrize("enabled", [True, False])
def test_denormals_are_flushed_only_inside_the_block(enabled: bool) -> None:
    if enabled and not torch.set_flush_denormal(False):  # also the state outside: off
        pytest.skip("this CPU cannot flush denormals")
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a denormal float32
    with flush_denormals(enabled):
        inside = float((tiny * 1.0)[0])
    assert inside == (0.0 if enabled else pytest.approx(1e-39, rel=1e-3))
    assert float((tiny * 1.0)[0]) == pytest.approx(1e-39, rel=1e-3)  # switched off again afterwards
