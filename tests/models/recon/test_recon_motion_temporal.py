"""The motion stage's temporal penalty (the latents' curvature in closed form; it takes frame-to-frame
jitter out of a fitted cycle) and its learning-rate decay after the fit (analytic ellipsoid prior)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from recon_analytic import analytic_prior

from models.bench.accuracy import volume_jitter
from models.recon.anchor import LatentParam
from models.recon.pipeline import ReconConfig, reconstruct_study
from tests.models.recon.conftest import ellipsoid_study

STD = torch.tensor([0.5, 2.0, 1.0])
CPU = torch.device("cpu")


def _param(z: torch.Tensor) -> LatentParam:
    return LatentParam(z, torch.zeros(3), STD, whitened=True)


def test_curvature_is_zero_on_a_straight_line_and_16a2_on_an_alternating_one() -> None:
    t = torch.arange(10, dtype=torch.float32)[:, None]
    line = 0.3 + 0.1 * t * STD
    assert float(_param(line).curvature(line)) == pytest.approx(0.0, abs=1e-10)
    a = 0.25
    zigzag = a * STD * (-1.0) ** t  # each second difference is ±4a standard deviations
    assert float(_param(zigzag).curvature(zigzag)) == pytest.approx(16 * a * a)


SMOOTH = [(22.0 - 3.0 * s, 19.0 - 2.5 * s, 42.0 - 3.0 * s) for s in np.sin(np.pi * np.arange(12) / 11)]
JITTERED = [tuple(a * (1.0 + 0.04 * (-1) ** k) for a in axes) for k, axes in enumerate(SMOOTH)]


def _volumes(weight: float) -> np.ndarray:
    cfg = ReconConfig.from_profile("smoke")
    cfg = dataclasses.replace(cfg, motion=dataclasses.replace(cfg.motion, steps=60, min_steps=60,
                                                              temporal_weight=weight))
    out: np.ndarray = reconstruct_study(ellipsoid_study(JITTERED, shape=(128, 96)), analytic_prior(), cfg,
                                        torch.device("cpu")).volumes_ml
    return out


@pytest.mark.slow
def test_the_penalty_takes_jitter_out_of_the_volume_curve(one_thread: None) -> None:
    truth = np.array([4.0 / 3.0 * np.pi * a * b * c / 1000.0 for a, b, c in SMOOTH])
    free, smoothed = _volumes(0.0), _volumes(100.0)
    assert volume_jitter(smoothed, truth) < 0.5 * volume_jitter(free, truth)


def _motion(decay_steps: int, floor: float) -> dict[str, Any]:
    cfg = ReconConfig.from_profile("smoke", pose_init="nominal")
    cfg = dataclasses.replace(cfg, motion=dataclasses.replace(cfg.motion, steps=6, min_steps=6,
                                                              decay_steps=decay_steps, lr_floor=floor))
    study = ellipsoid_study(SMOOTH[:4], shape=(96, 80))
    extras: dict[str, Any] = reconstruct_study(study, analytic_prior(), cfg, CPU).extras
    return extras


def test_the_motion_stage_decays_after_its_last_step(one_thread: None) -> None:
    assert _motion(4, 0.0)["motion_steps"] == 6 + 4
    plain = _motion(0, 1.0)["latents"]
    np.testing.assert_array_equal(_motion(1, 0.0)["latents"], plain)  # one more step at rate 0 moves nothing
    assert not np.array_equal(_motion(1, 0.5)["latents"], plain)
