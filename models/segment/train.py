"""Train the B-mode LV segmenter on synthetic cohort images (CPU friendly).

Profiles: ``smoke`` (a minute at most; tests and plumbing checks) and ``default`` (the
shipped checkpoint: 3000 synthetic pairs, 2000 AdamW steps of 12 frames at 128×128 with a
one-cycle learning rate; budgeted for under an hour on one CPU core). Loss: BCE + soft
Dice. Inputs are intensity-normalised per frame; augmentation on the fly: left–right flips,
gamma, gain and additive noise.
Validation pairs come from other (training-range) subjects than the training pairs.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

import numpy as np
import torch
from numpy.typing import NDArray
from torch.nn import functional as F

from models.segment.data import DataConfig, make_pairs
from models.segment.letterbox import normalise
from models.segment.network import SegmenterConfig, UNet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes a training run (saved in the checkpoint and its sidecar)."""

    profile: str = "default"
    steps: int = 2000
    batch_size: int = 12
    lr: float = 2e-3
    weight_decay: float = 1e-4
    eval_every: int = 250
    seed: int = 0
    workers: int = 1
    init: str | None = None  # start from this echo4d segmenter checkpoint (fine-tuning); None = random
    budget_s: float | None = None  # wall-clock training budget: the schedule runs on max(step, time) progress
    network: SegmenterConfig = field(default_factory=lambda: SegmenterConfig(size=128, base_channels=8, depth=4))
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["network"] = self.network.to_dict()
        d["data"] = self.data.to_dict()
        return d


PROFILES: Final[dict[str, TrainConfig]] = {
    "smoke": TrainConfig(
        profile="smoke", steps=40, batch_size=8, eval_every=20,
        network=SegmenterConfig(size=64, base_channels=8, depth=3),
        data=DataConfig(size=64, n_train=48, n_val=16, samples_per_subject=8, shapes=((96, 96), (96, 128))),
    ),
    "default": TrainConfig(data=DataConfig(simulator="classic")),  # the shipped checkpoint until 2026-12-06
    # A site's labelled frames (``echo4d train-segmenter --data DIR``): a short, gentle fine-tune of
    # ``init`` (the shipped checkpoint unless named); the network and data sizes follow ``init``.
    "finetune": TrainConfig(profile="finetune", steps=300, lr=3e-4, eval_every=100,
                            data=DataConfig(n_train=0, n_val=0, source="site")),
    # The shipped checkpoint since 2026-12-06: the classic default (``--init`` it) fine-tuned on the
    # physics simulator (models.cohort.echo_physics).
    "physics": TrainConfig(
        profile="physics", steps=2400, lr=1e-3,
        data=DataConfig(n_train=4000, n_val=240, simulator="physics", classic_fraction=0.2),
    ),
}


def profile(name: str, *, n_train: int | None = None, n_val: int | None = None, **overrides: Any) -> TrainConfig:
    """The named profile, with top-level fields replaced (``steps=…``, ``workers=…``, ``seed=…``) and
    optionally fewer/more training or validation pairs (short trials)."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {', '.join(PROFILES)}")
    cfg = PROFILES[name]
    data = replace(cfg.data, seed=overrides.get("seed", cfg.seed))
    if n_train is not None:
        data = replace(data, n_train=n_train)
    if n_val is not None:
        data = replace(data, n_val=n_val)
    return replace(cfg, **overrides, data=data)


@dataclass
class TrainResult:
    model: UNet
    metrics: dict[str, float]
    curves: dict[str, list[float]]


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-sample gamma (0.5–2.5: dark tissue), gain (0.6–1.3) and noise on (B, 1, S, S) images in [0, 1]."""
    b = x.shape[0]
    gamma = torch.exp(torch.empty(b, 1, 1, 1).uniform_(math.log(0.5), math.log(2.5), generator=gen))
    gain = torch.empty(b, 1, 1, 1).uniform_(0.6, 1.3, generator=gen)
    noise = torch.randn(x.shape, generator=gen) * torch.empty(b, 1, 1, 1).uniform_(0.0, 0.05, generator=gen)
    support = (x > 0).float()  # keep the outside of the sector black
    return ((x.clamp_min(1e-6) ** gamma) * gain + noise * support).clamp(0.0, 1.0)


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice on (B, 1, S, S)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    dice = (2 * inter + 1.0) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1.0)
    return bce + (1.0 - dice).mean()


def _to_tensor(images: NDArray[np.uint8], normalise_input: bool = True) -> torch.Tensor:
    x = normalise(images) if normalise_input else images.astype(np.float32) / 255.0
    return torch.from_numpy(x)[:, None]


@torch.no_grad()
def evaluate(model: UNet, images: NDArray[np.uint8], masks: NDArray[np.uint8], device: torch.device | str
             ) -> dict[str, float]:
    """Dice (mean, median, 5th percentile) and median relative area error on held-out pairs."""
    was_training = model.training
    model.eval()
    dices, area_err = [], []
    for start in range(0, len(images), 32):
        x = _to_tensor(images[start : start + 32], model.config.normalise).to(device)
        pred = (model(x) > 0).cpu().numpy()[:, 0]
        truth = masks[start : start + 32].astype(bool)
        inter = (pred & truth).sum(axis=(1, 2))
        total = pred.sum(axis=(1, 2)) + truth.sum(axis=(1, 2))
        dices.extend((2 * inter / np.maximum(total, 1)).tolist())
        area_err.extend((np.abs(pred.sum(axis=(1, 2)) - truth.sum(axis=(1, 2))) /
                         np.maximum(truth.sum(axis=(1, 2)), 1)).tolist())
    model.train(was_training)
    d = np.asarray(dices)
    return {"val_dice_mean": float(d.mean()), "val_dice_median": float(np.median(d)),
            "val_dice_p05": float(np.percentile(d, 5)), "val_area_rel_err_median": float(np.median(area_err))}


def one_cycle_lr(max_lr: float, done: float, warmup: float = 0.1) -> float:
    """Learning rate at training progress ``done`` ∈ [0, 1]: linear warm-up from max_lr/25 over the
    first ``warmup``, then cosine annealing to max_lr/1e4 (the shape of torch's OneCycleLR, driven by
    progress so that a wall-clock budget on a shared CPU still ends with a small rate)."""
    if done < warmup:
        return max_lr * (0.04 + 0.96 * done / warmup)
    t = (done - warmup) / (1.0 - warmup)
    return max_lr * (1e-4 + (1.0 - 1e-4) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0))))


def initial_model(cfg: TrainConfig) -> UNet:
    """A fresh U-Net of ``cfg.network``, or the checkpoint ``cfg.init`` (verified; same architecture)."""
    if cfg.init is None:
        return UNet(cfg.network)
    from models.segment.checkpoint import load_checkpoint

    model, _ = load_checkpoint(cfg.init, "cpu")  # moved to the run's device by train_segmenter
    if model.config != cfg.network:
        raise ValueError(f"{cfg.init}: architecture {model.config} differs from the run's {cfg.network}")
    return model.train()


def train_segmenter(cfg: TrainConfig, device: torch.device | str,
                    progress: Callable[[int, dict[str, float]], None] | None = None,
                    data: tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8]] | None
                    = None) -> TrainResult:
    """Generate the data (or take ``data`` = train images, masks, val images, masks, each (N, S, S)
    uint8, e.g. a site's labelled frames), train, evaluate; returns the model (eval mode), metrics
    and curves. Without validation frames the training frames are evaluated (and said so)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    if data is None:
        train_x, train_y = make_pairs(cfg.data, "train", cfg.workers)
        val_x, val_y = make_pairs(cfg.data, "val", cfg.workers)
    else:
        train_x, train_y, val_x, val_y = data
    if len(train_x) == 0:
        raise ValueError("no training frames")
    val_is_train = len(val_x) == 0
    if val_is_train:
        val_x, val_y = train_x, train_y
    data_s = time.perf_counter() - t0
    logger.info("segmenter data: %d train / %d val pairs in %.1f s", len(train_x), len(val_x), data_s)
    model = initial_model(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xs, ys = _to_tensor(train_x, cfg.network.normalise), torch.from_numpy(train_y.astype(np.float32))[:, None]
    curves: dict[str, list[float]] = {"loss": [], "val_dice_mean": []}
    t1 = time.perf_counter()
    model.train()
    step = 0  # steps done
    while step < cfg.steps:
        elapsed = time.perf_counter() - t1
        done = max(step / cfg.steps, elapsed / cfg.budget_s if cfg.budget_s else 0.0)
        if done >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = one_cycle_lr(cfg.lr, done)
        idx = torch.randint(len(xs), (cfg.batch_size,), generator=gen)
        x, y = augment(xs[idx], gen), ys[idx]
        flip = torch.rand(cfg.batch_size, generator=gen) < 0.5
        x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
        loss = loss_fn(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        curves["loss"].append(float(loss.detach()))
        step += 1
        if step % cfg.eval_every == 0:
            metrics = evaluate(model, val_x, val_y, device)
            curves["val_dice_mean"].append(metrics["val_dice_mean"])
            if progress is not None:
                progress(step, {"loss": float(np.mean(curves["loss"][-cfg.eval_every:])), **metrics})
    train_s = time.perf_counter() - t1
    metrics = evaluate(model, val_x, val_y, device)
    curves["val_dice_mean"].append(metrics["val_dice_mean"])
    metrics.update({"data_seconds": round(data_s, 1), "train_seconds": round(train_s, 1),
                    "steps_done": float(step), "seconds_per_step": round(train_s / max(step, 1), 4),
                    "n_train": float(len(train_x)),
                    "n_val": 0.0 if val_is_train else float(len(val_x)),
                    "final_loss": float(np.mean(curves["loss"][-20:])) if curves["loss"] else float("nan")})
    model.eval()
    return TrainResult(model, metrics, curves)
