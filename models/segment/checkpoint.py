"""Segmenter checkpoints: save, verify and load (nothing is ever downloaded).

A checkpoint is a pair of files, like the shape prior's (``models/prior/checkpoint.py``):

* ``<name>.pt`` — ``torch.save`` of ``{"format", "config", "train_config", "state_dict"}``
  (tensors and plain data only: loads with ``torch.load(weights_only=True)``);
* ``<name>.json`` — the sidecar: format, sha256 of the ``.pt``, config, training config,
  validation metrics, cohort generator version, curves summary, creation date, code version.

:func:`load_checkpoint` refuses a file whose checksum or config disagrees with its sidecar
(:class:`ModelError`, ``CHECKPOINT_INVALID``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import torch

from models import checkpoint_files
from models.checkpoint_files import invalid, read_checkpoint, thin_curve, write_checkpoint
from models.errors import ModelError
from models.segment.network import SegmenterConfig, UNet

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT: Final = "echo4d-segmenter/1"
DEFAULT_CHECKPOINT: Final[Path] = Path(__file__).resolve().parents[1] / "checkpoints" / "segmenter.pt"


def save_checkpoint(model: UNet, path: str | Path, *, train_config: Mapping[str, Any], metrics: Mapping[str, Any],
                    curves: Mapping[str, Sequence[float]], cohort_version: str) -> Path:
    """Write ``<name>.pt`` and its sidecar atomically; returns the ``.pt`` path."""
    return write_checkpoint(path, CHECKPOINT_FORMAT, config=model.config.to_dict(), train_config=train_config,
                            state_dict=model.state_dict(), metrics=metrics,
                            curves={k: thin_curve(v, ndigits=5) for k, v in curves.items()},
                            cohort_version=cohort_version)


def _invalid(detail: str) -> ModelError:
    return invalid(detail, "segmenter")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The parsed sidecar of checkpoint ``path`` (no checksum verification)."""
    return checkpoint_files.read_sidecar(path, CHECKPOINT_FORMAT, "segmenter", "segmenter")


def load_checkpoint(path: str | Path, device: torch.device | str) -> tuple[UNet, dict[str, Any]]:
    """(model in eval mode, sidecar) after verifying the sha256 and config against the sidecar."""
    pt = Path(path)
    doc, digest, payload = read_checkpoint(pt, CHECKPOINT_FORMAT, "segmenter", "segmenter")
    try:
        model = UNet(SegmenterConfig.from_dict(payload["config"]))
        model.load_state_dict(payload["state_dict"], strict=True)
    except (TypeError, KeyError, RuntimeError, ValueError) as exc:
        raise _invalid(f"segmenter checkpoint {pt.name} does not match the code's architecture: "
                       f"{str(exc).splitlines()[0][:200]}") from None
    logger.info("loaded segmenter %s (sha256 %s…)", pt.name, digest[:12])
    return model.to(device).eval(), doc
