"""Training of the shape prior on a precomputed pool of shapes (see ``pool.py``).

Loss (reference Eq. 6): ``mean |clamp(f(z, x)) − clamp(s(x))| + λ ‖z‖²`` with clamp at
``±clamp_mm`` (DeepSDF), plus an optional eikonal term ``(‖∇ₓf‖ − 1)²`` on uniform points.

Strategies (``TrainConfig.strategy``):

* ``joint`` — encoder and decoder end to end from the masks;
* ``two_stage`` — an auto-decoder (one free code per pool shape, DeepSDF) for
  ``autodecoder_steps``, then the encoder with the decoder frozen, supervised by the SDF
  loss and by the distance to the auto-decoded code.

Deterministic: weights from ``torch.manual_seed(seed)``, batch ``i`` from
``numpy.random.default_rng([seed, i])``, so a resumed run continues exactly where it stopped.
``init_from`` warm-starts the weights from a verified checkpoint of the same architecture
(e.g. retraining the shipped prior on a new cohort version).
The resumable state (model, optimiser, curves, step) goes to ``state_path``, outside git.

:func:`train_prior` runs the stages: :func:`build_pools` (:class:`TrainPools`), :func:`set_up`
(:class:`TrainSetup`: seeded model, codes, optimisers, maybe resumed), :func:`run_steps` (each step
:func:`train_step`), then :func:`finish` (latent statistics).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from models.prior.batches import draw_batch, pool_masks
from models.prior.config import PriorConfig, TrainConfig
from models.prior.data import ShapeSource, make_source
from models.prior.losses import eikonal_loss, sdf_loss
from models.prior.model import ShapePrior
from models.prior.pool import Pool, cached_pool

logger = logging.getLogger(__name__)

LOG_EVERY = 25
ProgressFactory = Callable[[int, int, str], Any]
"""``(total, initial, description) -> tqdm-like`` with ``update(n)``, ``set_postfix(**kw)``, ``close()``."""


@dataclass
class TrainResult:
    prior: ShapePrior
    curves: dict[str, list[float]]
    steps_done: int
    seconds: float
    pools: dict[str, Pool] = field(default_factory=dict)


def lr_factor(step: int, cfg: TrainConfig, stage_start: int, stage_steps: int) -> float:
    """Step decay ×0.3 at each fraction of ``lr_decay_at`` of the current stage, after a short warm-up."""
    local = step - stage_start
    warm = min(1.0, (local + 1) / max(1, min(200, stage_steps // 20)))
    decays = sum(local >= f * stage_steps for f in cfg.lr_decay_at)
    return warm * 0.3**decays


@torch.no_grad()
def validation_l1(prior: ShapePrior, pool: Pool, cfg: TrainConfig, present: tuple[bool, bool, bool],
                  device: torch.device, max_points: int = 2048) -> float:
    """Clamped SDF L1 (mm) of encoder codes on a pool (rendition 0, fixed views)."""
    was_training = prior.training
    prior.eval()
    total, count = 0.0, 0
    for start in range(0, pool.n_shapes, 32):
        rows = np.arange(start, min(start + 32, pool.n_shapes))
        masks, pres = pool_masks(pool, rows, present, 0, device)
        z = prior.encode(masks, pres)
        x = torch.from_numpy(pool.points[rows, :max_points]).to(device)
        s = torch.from_numpy(pool.sdf[rows, :max_points]).to(device)
        total += float(sdf_loss(prior.sdf(z, x), s, cfg.prior.clamp_mm)) * len(rows)
        count += len(rows)
    prior.train(was_training)
    return total / max(count, 1)


@torch.no_grad()
def latent_statistics(prior: ShapePrior, pool: Pool, device: torch.device) -> tuple[Tensor, Tensor]:
    """Mean and std (L,) of the encoder codes of every pool shape (all views, rendition 0)."""
    prior.eval()
    codes = []
    for start in range(0, pool.n_shapes, 64):
        rows = np.arange(start, min(start + 64, pool.n_shapes))
        masks, pres = pool_masks(pool, rows, (True, True, True), 0, device)
        codes.append(prior.encode(masks, pres))
    z = torch.cat(codes)
    return z.mean(dim=0), z.std(dim=0).clamp_min(1e-6)


def _save_state(path: Path, step: int, prior: ShapePrior, optims: dict[str, torch.optim.Optimizer],
                codes: nn.Parameter | None, curves: dict[str, list[float]], cfg: TrainConfig) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step, "model": prior.state_dict(), "optims": {k: o.state_dict() for k, o in optims.items()},
        "codes": codes.detach().clone() if codes is not None else None, "curves": curves,
        "train_config": cfg.to_dict(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def warm_start(prior: ShapePrior, checkpoint: Path, config: PriorConfig) -> None:
    """Copy the weights of a verified checkpoint (same architecture) into ``prior`` (``init_from``)."""
    from models.prior.checkpoint import load_prior

    src = load_prior(checkpoint, "cpu")
    if src.config != config:
        raise ValueError(f"init_from {checkpoint.name}: its PriorConfig differs from this run's")
    prior.load_state_dict(src.state_dict(), strict=True)
    logger.info("warm start from %s (sha256 %s…)", checkpoint.name, src.sha256[:12])


def autodecoder_steps(cfg: TrainConfig) -> int:
    """Steps of the auto-decoder stage (``two_stage`` only; 0 for ``joint``)."""
    return cfg.autodecoder_steps if cfg.strategy == "two_stage" else 0


@dataclass(frozen=True)
class TrainPools:
    """The precomputed training shapes and the validation shapes (None without validation subjects)."""

    train: Pool
    val: Pool | None

    def as_dict(self) -> dict[str, Pool]:
        return {"train": self.train} | ({"val": self.val} if self.val is not None else {})


def build_pools(cfg: TrainConfig, src: ShapeSource, cache_dir: Path | None,
                progress: ProgressFactory | None) -> TrainPools:
    """The pools of the first ``n_subjects`` training subjects of ``src`` and the ``n_val_subjects`` after them
    (cached in ``cache_dir``)."""
    seeds = src.training_seeds(cfg.n_subjects + cfg.n_val_subjects)
    train_seeds, val_seeds = seeds[: cfg.n_subjects], seeds[cfg.n_subjects:]
    t0 = time.perf_counter()
    train_pool = cached_pool(src, cfg, train_seeds, cache_dir, _pool_progress(progress, "train"))
    val_pool = cached_pool(src, cfg, val_seeds, cache_dir, _pool_progress(progress, "val")) if val_seeds else None
    logger.info("pools ready: %d training shapes, %s validation shapes in %.1f s", train_pool.n_shapes,
                val_pool.n_shapes if val_pool else 0, time.perf_counter() - t0)
    return TrainPools(train_pool, val_pool)


def _pool_progress(progress: ProgressFactory | None, name: str) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    bar = None

    def tick(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = progress(total, 0, f"pool {name}")
        bar.update(1)
        if done == total:
            bar.close()

    return tick


@dataclass(frozen=True)
class TrainSetup:
    """The model, the auto-decoder's codes (``two_stage``; else None), the optimisers, the curves so far and
    the first step to run (> 0 after a resume). Training updates them in place."""

    prior: ShapePrior
    codes: nn.Parameter | None
    optims: dict[str, torch.optim.Optimizer]
    curves: dict[str, list[float]]
    start: int


def set_up(cfg: TrainConfig, n_shapes: int, dev: torch.device, resume_from: Path | None) -> TrainSetup:
    """Weights from ``torch.manual_seed(cfg.seed)`` (or ``init_from``), one code per training shape
    (``two_stage``), the optimisers; then the state at ``resume_from``, if given."""
    torch.manual_seed(cfg.seed)
    prior = ShapePrior(cfg.prior).to(dev)
    if cfg.init_from:
        warm_start(prior, Path(cfg.init_from), cfg.prior)
    codes = None
    if cfg.strategy == "two_stage":
        codes = nn.Parameter(torch.randn(n_shapes, cfg.prior.latent_dim, device=dev) * 0.01)
    optims: dict[str, torch.optim.Optimizer] = {
        "main": torch.optim.Adam([
            {"params": prior.decoder.parameters(), "lr": cfg.lr_decoder, "base_lr": cfg.lr_decoder},
            {"params": prior.encoder.parameters(), "lr": cfg.lr_encoder, "base_lr": cfg.lr_encoder},
        ], weight_decay=cfg.weight_decay)
    }
    if codes is not None:
        optims["codes"] = torch.optim.Adam([{"params": [codes], "lr": cfg.lr_latent, "base_lr": cfg.lr_latent}])
    curves: dict[str, list[float]] = {"step": [], "train_loss": [], "val_step": [], "val_l1_3views_mm": [],
                                      "val_l1_a4c_mm": [], "step_ms": []}
    start = 0
    if resume_from is not None:
        start, curves = _resume(resume_from, cfg, prior, optims, codes, dev)
    return TrainSetup(prior, codes, optims, curves, start)


def _resume(path: Path, cfg: TrainConfig, prior: ShapePrior, optims: dict[str, torch.optim.Optimizer],
            codes: nn.Parameter | None, dev: torch.device) -> tuple[int, dict[str, list[float]]]:
    """Load the state at ``path`` into the model, optimisers and codes; returns (step, curves)."""
    state = torch.load(path, map_location=dev, weights_only=True)
    if state["train_config"] != cfg.to_dict():
        raise ValueError(f"resume state {path.name} was made with a different training config")
    prior.load_state_dict(state["model"])
    for k, o in optims.items():
        o.load_state_dict(state["optims"][k])
    if codes is not None and state["codes"] is not None:
        codes.data.copy_(state["codes"])
    curves = {k: list(v) for k, v in state["curves"].items()}
    start = int(state["step"])
    logger.info("resumed training at step %d", start)
    return start, curves


def train_step(cfg: TrainConfig, setup: TrainSetup, pool: Pool, step: int, gen: torch.Generator,
               dev: torch.device) -> Tensor:
    """Step ``step``: learning rates, batch ``numpy.random.default_rng([seed, step])``, loss, one optimiser
    step. Returns the loss (detached)."""
    prior, codes = setup.prior, setup.codes
    two_stage = cfg.strategy == "two_stage"
    ad_steps = autodecoder_steps(cfg)
    rng = np.random.default_rng([cfg.seed, step])
    stage_one = step < ad_steps
    stage_start, stage_steps = (0, ad_steps) if stage_one else (ad_steps, cfg.steps - ad_steps)
    if two_stage:  # stage 2 trains the encoder against the frozen auto-decoder (also after a resume)
        prior.decoder.requires_grad_(stage_one)
    factor = lr_factor(step, cfg, stage_start, stage_steps)
    for o in setup.optims.values():
        for g in o.param_groups:
            g["lr"] = g["base_lr"] * factor
    batch = draw_batch(pool, rng, cfg.batch_shapes, cfg.points_per_step, cfg.view_dropout, dev)
    if stage_one:
        assert codes is not None
        z = codes[batch.index]
    else:
        z = prior.encode(batch.masks, batch.present)
    loss = sdf_loss(prior.sdf(z, batch.points), batch.sdf, cfg.prior.clamp_mm)
    loss = loss + cfg.latent_l2 * (z**2).sum(dim=1).mean()
    if two_stage and not stage_one:
        assert codes is not None
        target = codes[batch.index].detach()  # matched in units of the codes' total variance
        loss = loss + ((z - target) ** 2).sum(dim=1).mean() / codes.detach().var(dim=0).sum().clamp_min(1e-6)
    if cfg.eikonal > 0:
        loss = loss + cfg.eikonal * eikonal_loss(prior, z, 64, gen)
    for o in setup.optims.values():
        o.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    for o in setup.optims.values():
        o.step()
    return loss.detach()


def run_steps(cfg: TrainConfig, setup: TrainSetup, pools: TrainPools, dev: torch.device, state_path: Path | None,
              progress: ProgressFactory | None) -> float:
    """Steps ``setup.start`` … ``cfg.steps − 1``: curves every :data:`LOG_EVERY` steps, validation every
    ``eval_every``, the resumable state every ``checkpoint_every``. Returns the seconds spent."""
    bar = progress(cfg.steps, setup.start, "train prior") if progress is not None else None
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    prior, curves, val_pool = setup.prior, setup.curves, pools.val
    running, n_running, t_interval = 0.0, 0, time.perf_counter()
    prior.train()
    t_train = time.perf_counter()
    for step in range(setup.start, cfg.steps):
        loss = train_step(cfg, setup, pools.train, step, gen, dev)
        running += float(loss)
        n_running += 1
        done = step + 1
        if done % LOG_EVERY == 0 or done == cfg.steps:
            curves["step"].append(done)
            curves["train_loss"].append(running / n_running)
            curves["step_ms"].append(1000.0 * (time.perf_counter() - t_interval) / n_running)
            running, n_running, t_interval = 0.0, 0, time.perf_counter()
        stage_one = step < autodecoder_steps(cfg)
        if val_pool is not None and not stage_one and (done % cfg.eval_every == 0 or done == cfg.steps):
            curves["val_step"].append(done)
            curves["val_l1_3views_mm"].append(validation_l1(prior, val_pool, cfg, (True, True, True), dev))
            curves["val_l1_a4c_mm"].append(validation_l1(prior, val_pool, cfg, (True, False, False), dev))
        if state_path is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
            _save_state(state_path, done, prior, setup.optims, setup.codes, curves, cfg)
        if bar is not None:
            bar.update(1)
            if done % LOG_EVERY == 0 and curves["train_loss"]:
                post = {"loss": f"{curves['train_loss'][-1]:.3f}"}
                if curves["val_l1_3views_mm"]:
                    post["val"] = f"{curves['val_l1_3views_mm'][-1]:.3f}"
                bar.set_postfix(**post)
        if not math.isfinite(float(loss)):
            raise FloatingPointError(f"training diverged at step {done}")
    if bar is not None:
        bar.close()
    return time.perf_counter() - t_train


def finish(prior: ShapePrior, pool: Pool, dev: torch.device) -> None:
    """Every layer trainable again, the latent statistics of the training shapes set, eval mode."""
    prior.decoder.requires_grad_(True)
    mean, std = latent_statistics(prior, pool, dev)
    prior.latent_mean.copy_(mean)
    prior.latent_std.copy_(std)
    prior.eval()


def train_prior(cfg: TrainConfig, *, device: torch.device | str, cache_dir: Path | None = None,
                state_path: Path | None = None, resume: bool = False, source: ShapeSource | None = None,
                progress: ProgressFactory | None = None) -> TrainResult:
    """Train a :class:`ShapePrior` as configured; returns it with its latent statistics set."""
    dev = torch.device(device)
    pools = build_pools(cfg, source or make_source(cfg.data_source), cache_dir, progress)
    resume_from = state_path if resume and state_path is not None and state_path.is_file() else None
    setup = set_up(cfg, pools.train.n_shapes, dev, resume_from)
    seconds = run_steps(cfg, setup, pools, dev, state_path, progress)
    finish(setup.prior, pools.train, dev)
    return TrainResult(setup.prior, setup.curves, cfg.steps, seconds, pools.as_dict())
