"""Checkpoint registry of the shape prior: save, verify and load; nothing is ever downloaded.

A checkpoint is a pair of files:

* ``<name>.pt`` — ``torch.save`` of ``{"format", "config", "state_dict", "train_config"}``
  (tensors and plain data only, so it loads with ``torch.load(weights_only=True)``);
* ``<name>.json`` — the sidecar: format, config, sha256 of the ``.pt``, held-out metrics,
  cohort generator version, a summary of the training curves, creation date, code version.

:func:`load_prior` refuses a checkpoint whose checksum or config disagrees with its sidecar
(:class:`ModelError` with ``ErrorCode.CHECKPOINT_INVALID``). :func:`load_default_prior`
loads the shipped ``models/checkpoints/shape_prior.pt`` once per process and device (it
returns a shared module in eval mode with frozen parameters: optimise codes, not weights,
or ``copy.deepcopy`` it first).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import torch

from models import __version__ as CODE_VERSION
from models import checkpoint_files
from models.checkpoint_files import file_sha256, invalid, sidecar_path, verified_sidecar
from models.errors import ModelError
from models.prior.config import PriorConfig, TrainConfig
from models.prior.model import ShapePrior

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT: Final = "echo4d-prior/1"
DEFAULT_CHECKPOINT: Final[Path] = Path(__file__).resolve().parents[1] / "checkpoints" / "shape_prior.pt"
MAX_CURVE_POINTS: Final = 100



def summarise_curves(curves: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """Keep at most MAX_CURVE_POINTS evenly spaced points of each curve (last point always kept)."""
    out: dict[str, list[float]] = {}
    for name, values in curves.items():
        vals = [float(v) for v in values]
        if len(vals) > MAX_CURVE_POINTS:
            idx = sorted({round(i * (len(vals) - 1) / (MAX_CURVE_POINTS - 1)) for i in range(MAX_CURVE_POINTS)})
            vals = [vals[i] for i in idx]
        out[name] = vals
    return out


def save_prior(prior: ShapePrior, path: str | Path, *, train_config: TrainConfig | None,
               metrics: Mapping[str, Any], curves: Mapping[str, Sequence[float]], cohort_version: str) -> Path:
    """Write ``<name>.pt`` and its ``<name>.json`` sidecar atomically; returns the ``.pt`` path."""
    pt = Path(path)
    pt.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": prior.config.to_dict(),
        "train_config": train_config.to_dict() if train_config is not None else {},
        "state_dict": {k: v.detach().cpu().clone() for k, v in prior.state_dict().items()},
    }
    tmp = pt.with_name(pt.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, pt)
    sidecar = {
        "format": CHECKPOINT_FORMAT,
        "file": pt.name,
        "sha256": file_sha256(pt),
        "size_bytes": pt.stat().st_size,
        "config": prior.config.to_dict(),
        "train_config": payload["train_config"],
        "metrics": dict(metrics),
        "cohort_version": cohort_version,
        "curves": summarise_curves(curves),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": CODE_VERSION,
    }
    tmp_json = sidecar_path(pt).with_name(pt.stem + ".json.tmp")
    tmp_json.write_text(json.dumps(sidecar, indent=2, sort_keys=False) + "\n")
    os.replace(tmp_json, sidecar_path(pt))
    return pt


def _invalid(detail: str) -> ModelError:
    return invalid(detail, "checkpoint")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The parsed sidecar of checkpoint ``path`` (no checksum verification)."""
    return checkpoint_files.read_sidecar(path, CHECKPOINT_FORMAT, "shape prior", "checkpoint")


def load_prior(path: str | Path, device: torch.device | str = "cpu") -> ShapePrior:
    """Load a checkpoint after verifying its sha256 and config against the sidecar; model in eval mode."""
    pt = Path(path)
    doc, digest = verified_sidecar(pt, CHECKPOINT_FORMAT, "shape prior", "checkpoint")
    try:
        payload = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of every kind
        raise _invalid(f"shape prior checkpoint {pt.name} cannot be read: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise _invalid(f"shape prior checkpoint {pt.name} is not an {CHECKPOINT_FORMAT} file")
    if payload.get("config") != doc.get("config"):
        raise _invalid(f"shape prior checkpoint {pt.name}: config differs from its sidecar")
    try:
        config = PriorConfig.from_dict(payload["config"])
        prior = ShapePrior(config)
        prior.load_state_dict(payload["state_dict"], strict=True)
    except (ModelError, TypeError, KeyError, RuntimeError, ValueError) as exc:
        raise _invalid(f"shape prior checkpoint {pt.name} does not match the code's architecture: "
                       f"{str(exc).splitlines()[0][:200]}") from None
    prior.name, prior.checkpoint, prior.sha256 = pt.stem, pt.name, digest
    prior.version = str(doc.get("code_version", ""))
    logger.info("loaded shape prior %s (sha256 %s…)", pt.name, digest[:12])
    return prior.to(device).eval()


@functools.lru_cache(maxsize=4)
def _cached_default(device: str) -> ShapePrior:
    prior = load_prior(DEFAULT_CHECKPOINT, device)
    for p in prior.parameters():
        p.requires_grad_(False)
    return prior


def load_default_prior(device: torch.device | str = "cpu") -> ShapePrior:
    """The shipped prior, loaded and verified once per process and device (shared, frozen, eval mode)."""
    return _cached_default(str(torch.device(device)))
