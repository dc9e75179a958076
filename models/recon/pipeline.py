"""``reconstruct_study``: masks in, a 4D LV mesh sequence with volumes and EF out.

Stages (names reported to ``progress`` and used as keys of ``timings_s``; one function each in
``models.recon.stages``, each returning a small frozen dataclass):

1. ``encode`` — put the views on one phase axis (ED = frame 0), encode every frame's masks.
2. ``anchor`` — test-time optimisation of the ED latent and the probe poses.
3. ``motion`` — per-frame latents + BiLSTM + velocity field, probes frozen.
4. ``mesh`` — marching cubes at ED, Radial SDF Alignment of later frames, volumes, fit scores.

then ``assemble`` puts them into a :class:`~models.recon.result.ReconResult`.
Deterministic for a given ``config.seed`` on a given device and thread count.

On the CPU the reconstruction runs with denormal floats flushed to zero (:func:`flush_denormals`):
the decoder's Softplus(β = 100) turns every pre-activation below about −0.87 into exp(100·x), a
denormal, and arithmetic on denormals is many times slower. A value below 1.2e-38 is far below half
an ulp of any float32 sum it enters that is larger than ~1e-31, so flushing it leaves the results as
they are in practice (not by construction): every non-timing output of ``echo4d bench accuracy`` on
three cases was identical with and without it (docs/results.md, "Session 7").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import torch

from models.recon.config import ReconConfig
from models.recon.control import ProgressFn, ReconstructionCancelled, StageControl, StepsFn, StopFn
from models.recon.result import ReconResult
from models.recon.shape_model import ReconPrior
from models.recon.stages.anchor import anchor_ed
from models.recon.stages.assemble import assemble
from models.recon.stages.encode import encode_views
from models.recon.stages.mesh import mesh_sequence
from models.recon.stages.motion import fit_frames
from models.study import Study

if TYPE_CHECKING:
    from models.prior.model import ShapePrior

__all__ = ["ReconConfig", "ReconstructionCancelled", "reconstruct_study"]

T = TypeVar("T")


def reconstruct_study(study: Study, prior: ShapePrior | ReconPrior, config: ReconConfig, device: torch.device,
                      progress: ProgressFn | None = None, should_stop: StopFn | None = None,
                      steps: StepsFn | None = None) -> ReconResult:
    """Reconstruct ``study`` with ``prior`` (a :class:`models.prior.model.ShapePrior` or a
    :class:`ReconPrior`) on ``device``. Raises :class:`InputError` for unusable input and
    :class:`ReconstructionCancelled` when ``should_stop()`` turns true at a stage boundary.
    ``steps(stage, done, total)`` counts each stage's steps (optimiser steps of anchor and motion)."""
    forked = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked), flush_denormals(device.type == "cpu"):
        torch.manual_seed(config.seed)
        return _reconstruct(study, prior, config, device, progress, should_stop, steps)


@contextlib.contextmanager
def flush_denormals(enabled: bool) -> Iterator[None]:
    """Flush denormal floats to zero on this thread (CPU, SSE3) for the block, then switch it off again
    (torch's default; torch has no getter for the previous state)."""
    if not enabled or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


@dataclass
class _Stages:
    """Runs each stage under its :class:`StageControl` (cancellation check, progress 0 → 1) and times it."""

    progress: ProgressFn | None
    should_stop: StopFn | None
    steps: StepsFn | None
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, total: int | None, body: Callable[[StageControl], T],
            total_since: float | None = None) -> T:
        """``body(control)`` as stage ``name`` (``total`` steps reported at its start and end, if any);
        ``total_since``: also record ``timings["total"]`` from that time before the stage's last report."""
        control = StageControl(name, self.progress, self.should_stop, self.steps)
        control.check()
        control.report(0.0, 0 if total else None, total)
        t0 = time.perf_counter()
        out = body(control)
        self.timings[name] = time.perf_counter() - t0
        if total_since is not None:
            self.timings["total"] = time.perf_counter() - total_since
        control.report(1.0, total, total)
        return out


def _reconstruct(study: Study, prior_in: ShapePrior | ReconPrior, cfg: ReconConfig, device: torch.device,
                 progress: ProgressFn | None, should_stop: StopFn | None, steps: StepsFn | None) -> ReconResult:
    t_start = time.perf_counter()
    prior = ReconPrior.adapt(prior_in).to(device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    stages = _Stages(progress, should_stop, steps)
    enc = stages.run("encode", 1, lambda control: encode_views(study, prior, cfg, device))
    anc = stages.run("anchor", None, lambda control: anchor_ed(enc, prior, cfg, device, generator, control))
    frames = stages.run("motion", None, lambda control: fit_frames(enc, anc, cfg, device, generator, control))
    meshed = stages.run("mesh", 3, lambda control: mesh_sequence(enc, anc, frames, cfg, control), total_since=t_start)
    return assemble(enc, anc, frames, meshed, cfg, device, stages.timings, [*enc.warnings, *meshed.warnings])
