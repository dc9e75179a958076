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
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import torch

from models import checkpoint_files
from models.checkpoint_files import invalid, read_checkpoint, thin_curve, write_checkpoint
from models.errors import ModelError
from models.prior.config import PriorConfig, TrainConfig
from models.prior.model import ShapePrior

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT: Final = "echo4d-prior/1"
DEFAULT_CHECKPOINT: Final[Path] = Path(__file__).resolve().parents[1] / "checkpoints" / "shape_prior.pt"


def save_prior(prior: ShapePrior, path: str | Path, *, train_config: TrainConfig | None,
               metrics: Mapping[str, Any], curves: Mapping[str, Sequence[float]], cohort_version: str) -> Path:
    """Write ``<name>.pt`` and its ``<name>.json`` sidecar atomically; returns the ``.pt`` path."""
    return write_checkpoint(path, CHECKPOINT_FORMAT, config=prior.config.to_dict(),
                            train_config=train_config.to_dict() if train_config is not None else {},
                            state_dict=prior.state_dict(), metrics=metrics,
                            curves={k: thin_curve(v) for k, v in curves.items()}, cohort_version=cohort_version)


def _invalid(detail: str) -> ModelError:
    return invalid(detail, "checkpoint")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The parsed sidecar of checkpoint ``path`` (no checksum verification)."""
    return checkpoint_files.read_sidecar(path, CHECKPOINT_FORMAT, "shape prior", "checkpoint")


def load_prior(path: str | Path, device: torch.device | str) -> ShapePrior:
    """Load a checkpoint after verifying its sha256 and config against the sidecar; model in eval mode."""
    pt = Path(path)
    doc, digest, payload = read_checkpoint(pt, CHECKPOINT_FORMAT, "shape prior", "checkpoint")
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


def load_default_prior(device: torch.device | str) -> ShapePrior:
    """The shipped prior, loaded and verified once per process and device (shared, frozen, eval mode)."""
    return _cached_default(str(torch.device(device)))
