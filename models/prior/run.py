"""One training run end to end: pools → training → held-out evaluation → checkpoint + sidecar.

The CLI (``echo4d train-prior``) is a thin wrapper around :func:`train_and_save`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from models.prior.checkpoint import save_prior
from models.prior.config import TrainConfig
from models.prior.data import ALL_SUBSETS, make_source
from models.prior.evaluate import evaluate_prior
from models.prior.train import ProgressFactory, train_prior, validation_l1

logger = logging.getLogger(__name__)


def merge_config(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override`` (the nested ``prior`` section is merged key by key)."""
    out = dict(base)
    for k, v in override.items():
        out[k] = {**out.get(k, {}), **v} if k == "prior" and isinstance(v, dict) else v
    return out


def config_key(cfg: TrainConfig) -> str:
    return hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def train_and_save(cfg: TrainConfig, out: Path, *, n_eval_subjects: int, device: torch.device | str,
                   cache_dir: Path | None = None, resume: bool = False, progress: ProgressFactory | None = None,
                   eval_progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train as configured, evaluate encoder-only on the first ``n_eval_subjects`` test subjects
    (ED and ES, all 7 view subsets) and write ``out`` (+ sidecar). Returns the sidecar metrics."""
    source = make_source(cfg.data_source)
    state_path = cache_dir / f"train-state-{out.stem}-{config_key(cfg)}.pt" if cache_dir is not None else None
    result = train_prior(cfg, device=device, cache_dir=cache_dir, state_path=state_path, resume=resume,
                         source=source, progress=progress)
    prior = result.prior
    dev = torch.device(device)
    metrics: dict[str, Any] = {
        "train_steps": result.steps_done,
        "train_seconds": round(result.seconds, 1),
        "train_shapes": result.pools["train"].n_shapes,
        "final_train_loss": result.curves["train_loss"][-1] if result.curves["train_loss"] else None,
    }
    if "val" in result.pools:
        val = result.pools["val"]
        metrics["val_l1_mm"] = {
            "A4C+A2C+A3C": validation_l1(prior, val, cfg, (True, True, True), dev),
            "A4C": validation_l1(prior, val, cfg, (True, False, False), dev),
        }
        prior.eval()
    if n_eval_subjects > 0:
        seeds = source.test_seeds()[:n_eval_subjects]
        metrics["test"] = evaluate_prior(prior, seeds, ALL_SUBSETS, device=device, source=source,
                                          progress=eval_progress)
    save_prior(prior, out, train_config=cfg, metrics=metrics, curves=result.curves, cohort_version=source.version)
    logger.info("wrote %s", out)
    return metrics
