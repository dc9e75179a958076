"""Decoder-size trade-off: milliseconds per Adam step versus SDF accuracy reached in equal CPU time.

Each candidate decoder auto-decodes the same pool of shapes (one free code per shape, DeepSDF)
for the same wall-clock budget, i.e. ``budget / ms_per_step`` steps, and is scored by the mean
|f − s| on held-out SDF samples within 5 mm of the surface. Step times are measured in
interleaved rounds in one process so that a shared, noisy CPU affects every candidate alike.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from models.prior.config import PriorConfig
from models.prior.decoder import SDFDecoder
from models.prior.losses import sdf_loss
from models.prior.pool import Pool

NEAR_MM = 5.0


@dataclass(frozen=True)
class Candidate:
    name: str
    config: PriorConfig


def parse_candidate(spec: str, base: PriorConfig) -> Candidate:
    """``"DEPTHxWIDTH[+ff][+silu]"`` → a decoder of that many hidden layers × width (skip at depth // 2),
    ``+ff`` with 16 Gaussian Fourier features (else none), ``+silu`` with SiLU (else Softplus β=100)."""
    head, *flags = spec.strip().split("+")
    depth, width = (int(v) for v in head.lower().split("x"))
    unknown = set(flags) - {"ff", "silu"}
    if unknown:
        raise ValueError(f"unknown decoder flag(s) {sorted(unknown)} in {spec!r}")
    cfg = base.replace(decoder_depth=depth, decoder_width=width, decoder_skip_layer=depth // 2,
                       fourier_features=16 if "ff" in flags else 0,
                       decoder_activation="silu" if "silu" in flags else "softplus")
    return Candidate(spec.strip(), cfg)


DEFAULT_CANDIDATES = ("8x512+ff", "6x256+ff", "5x192+ff", "4x128+ff", "5x192+ff+silu", "5x192")
"""The first sweep: DeepSDF's 8×512 and compact sizes (all with Fourier features), SiLU, no Fourier."""


def default_candidates(base: PriorConfig, specs: Sequence[str] = DEFAULT_CANDIDATES) -> list[Candidate]:
    return [parse_candidate(s, base) for s in specs]


def time_steps(candidates: Sequence[Candidate], n_points: int = 4096, batch_shapes: int = 8, rounds: int = 3,
               steps_per_round: int = 8, seed: int = 0) -> dict[str, float]:
    """Median ms per Adam step (forward + backward + update) at ``n_points`` points per step."""
    torch.manual_seed(seed)
    models = {c.name: SDFDecoder(c.config) for c in candidates}
    opts = {k: torch.optim.Adam(m.parameters(), 1e-4) for k, m in models.items()}
    per = n_points // batch_shapes
    times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(rounds + 1):  # round 0 warms up
        for c in candidates:
            m, o = models[c.name], opts[c.name]
            z = torch.randn(batch_shapes, c.config.latent_dim)
            x = torch.randn(batch_shapes, per, 3) * 30.0
            s = torch.randn(batch_shapes, per)
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                loss = sdf_loss(m(z, x), s, c.config.clamp_mm)
                o.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                o.step()
            if r > 0:
                times[c.name].append(1000.0 * (time.perf_counter() - t0) / steps_per_round)
    return {k: float(np.median(v)) for k, v in times.items()}


def autodecode_accuracy(cfg: PriorConfig, pool: Pool, steps: int, batch_shapes: int = 8, points: int = 512,
                        held_out: int = 2048, seed: int = 0) -> dict[str, float]:
    """Auto-decode ``pool`` for ``steps`` steps; near-surface L1 (mm) on the last ``held_out`` samples."""
    torch.manual_seed(seed)
    dec = SDFDecoder(cfg)
    n, p = pool.points.shape[:2]
    train_p = p - held_out
    codes = nn.Parameter(torch.randn(n, cfg.latent_dim) * 0.01)
    opt = torch.optim.Adam([{"params": dec.parameters(), "lr": 1e-3}, {"params": [codes], "lr": 1e-3}])
    t0 = time.perf_counter()
    for step in range(steps):
        rng = np.random.default_rng([seed, step])
        idx = rng.choice(n, size=batch_shapes)
        cols = rng.integers(0, train_p, size=(batch_shapes, points))
        x = torch.from_numpy(pool.points[idx[:, None], cols])
        s = torch.from_numpy(pool.sdf[idx[:, None], cols])
        for g in opt.param_groups:
            g["lr"] = 1e-3 * (0.3 if step >= 0.8 * steps else 1.0)
        z = codes[torch.from_numpy(idx)]
        loss = sdf_loss(dec(z, x), s, cfg.clamp_mm) + 1e-4 * (z**2).sum(dim=1).mean()
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        x = torch.from_numpy(pool.points[:, train_p:])
        s = torch.from_numpy(pool.sdf[:, train_p:])
        f = dec(codes, x)
        err = (f - s).abs()
        near = s.abs() < NEAR_MM
        clamped = sdf_loss(f, s, cfg.clamp_mm)
    return {"near_l1_mm": float(err[near].mean()), "clamped_l1_mm": float(clamped), "seconds": seconds}


def decoder_tradeoff(pool: Pool, base: PriorConfig, budget_s: float,
                     candidates: Sequence[Candidate] | None = None) -> list[dict[str, Any]]:
    """One row per candidate: parameters, ms/step, steps in the budget, held-out near-surface L1."""
    cands = list(candidates) if candidates is not None else default_candidates(base)
    ms = time_steps(cands)
    rows = []
    for c in cands:
        steps = max(10, int(budget_s * 1000.0 / ms[c.name]))
        acc = autodecode_accuracy(c.config, pool, steps)
        params = sum(p.numel() for p in SDFDecoder(c.config).parameters())
        rows.append({"decoder": c.name, "params": params, "ms_per_step": ms[c.name], "steps": steps, **acc})
    return rows
