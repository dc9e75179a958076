"""The motion stage's velocity field carries each frame's surface onto the next (analytic ellipsoid prior)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from recon_analytic import analytic_prior

from models.recon.config import ReconConfig
from models.recon.control import StageControl
from models.recon.shape_model import ReconPrior
from models.recon.stages.anchor import anchor_ed
from models.recon.stages.encode import encode_views
from models.recon.stages.motion import FrameLatents, fit_frames, surface_seed
from tests.models.recon.conftest import ellipsoid_study

CPU = torch.device("cpu")
CYCLE = [(22.0 - 3.0 * s, 19.0 - 2.5 * s, 42.0 - 3.0 * s) for s in np.sin(np.pi * np.arange(4) / 3)]


def _fit(lambda_transport: float) -> tuple[FrameLatents, ReconPrior]:
    cfg = ReconConfig.from_profile("smoke", pose_init="nominal")
    cfg = dataclasses.replace(cfg, motion=dataclasses.replace(cfg.motion, steps=60, min_steps=60, lr_velocity=3e-3,
                                                              lambda_transport=lambda_transport))
    prior = analytic_prior()
    torch.manual_seed(cfg.seed)  # the LSTM's and the field's initial weights, as reconstruct_study seeds them
    enc = encode_views(ellipsoid_study(CYCLE, shape=(96, 80)), prior, cfg, CPU)
    generator = torch.Generator().manual_seed(cfg.seed)
    anc = anchor_ed(enc, prior, cfg, CPU, generator, StageControl("anchor"))
    return fit_frames(enc, anc, cfg, CPU, generator, StageControl("motion")), prior


def _transport_error_mm(frames: FrameLatents, prior: ReconPrior, moved: bool) -> float:
    """Mean |f(z_{t+1}, x + v(x, t))| over points x on frame t's surface, every t (``moved=False``: v = 0)."""
    z = frames.z_frames
    n = int(z.shape[0])
    errors = []
    with torch.no_grad():
        for t in range(n - 1):
            x = surface_seed(prior, z[t], frames.box_lo, frames.box_hi, 256, torch.Generator().manual_seed(t))
            if moved:
                assert frames.velocity is not None
                x = x + frames.velocity(x, torch.full((len(x),), t / n))
            errors.append(prior.sdf(z[t + 1][None], x[None]).abs().mean())
    return float(torch.stack(errors).mean())


def test_the_velocity_field_carries_each_surface_onto_the_next(one_thread: None) -> None:
    frames, prior = _fit(lambda_transport=0.5)
    still = _transport_error_mm(frames, prior, moved=False)
    assert still > 0.5  # the cycle moves the surface by about a millimetre per frame
    assert _transport_error_mm(frames, prior, moved=True) < 0.5 * still
    # without the transport loss only the smoothness term acts: the field stays near zero
    unforced, _ = _fit(lambda_transport=0.0)
    assert _transport_error_mm(unforced, prior, moved=True) > 0.9 * _transport_error_mm(unforced, prior, moved=False)
