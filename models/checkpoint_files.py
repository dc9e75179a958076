"""The file side of every shipped checkpoint: ``<name>.pt`` beside a ``<name>.json`` sidecar.

The ``.pt`` is ``torch.save`` of ``{"format", "config", "train_config", "state_dict"}`` (tensors
and plain data only: it loads with ``torch.load(weights_only=True)``). The sidecar carries the
format tag, the sha256 of the ``.pt``, the model's config, the training config, metrics, the
cohort generator version, thinned training curves, creation date and code version; loaders verify
sha256 and config before torch ever reads the weights. Shared by the shape prior and the segmenter.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import torch

from models import __version__ as CODE_VERSION
from models.errors import ErrorCode, ModelError

MAX_CURVE_POINTS: Final = 100


def sidecar_path(path: str | Path) -> Path:
    """The sidecar of checkpoint ``path``: same name, ``.json``."""
    return Path(path).with_suffix(".json")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read 1 MiB at a time."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def invalid(detail: str, field: str) -> ModelError:
    """The one error every checkpoint problem raises."""
    return ModelError(detail, code=ErrorCode.CHECKPOINT_INVALID, field=field)


def read_sidecar(path: str | Path, fmt: str, what: str, field: str) -> dict[str, Any]:
    """The parsed sidecar of checkpoint ``path`` with format ``fmt`` (no checksum verification)."""
    side = sidecar_path(path)
    if not side.is_file():
        raise invalid(f"{what} sidecar {side.name} is missing", field)
    try:
        doc = json.loads(side.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise invalid(f"{what} sidecar {side.name} is not valid JSON", field) from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise invalid(f"{what} sidecar {side.name} is not an {fmt} sidecar", field)
    return doc


def verified_sidecar(path: Path, fmt: str, what: str, field: str) -> tuple[dict[str, Any], str]:
    """(sidecar, sha256) of checkpoint ``path`` after checking it exists and matches its sidecar's sha256."""
    if not path.is_file():
        raise invalid(f"{what} checkpoint {path.name} not found (expected at {path})", field)
    doc = read_sidecar(path, fmt, what, field)
    digest = file_sha256(path)
    if digest != doc.get("sha256"):
        raise invalid(f"{what} checkpoint {path.name} is corrupt: sha256 {digest[:12]}… does not match the "
                      f"sidecar's {str(doc.get('sha256'))[:12]}…", field)
    return doc, digest


def read_checkpoint(path: Path, fmt: str, what: str, field: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """(sidecar, sha256, payload) of checkpoint ``path``: the sha256 matches the sidecar, torch reads it with
    ``weights_only=True``, its format is ``fmt`` and its config equals the sidecar's. The weights are not
    loaded into a model here (that is the caller's, which knows the architecture)."""
    doc, digest = verified_sidecar(path, fmt, what, field)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of every kind
        raise invalid(f"{what} checkpoint {path.name} cannot be read: {type(exc).__name__}", field) from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise invalid(f"{what} checkpoint {path.name} is not an {fmt} file", field)
    if payload.get("config") != doc.get("config"):
        raise invalid(f"{what} checkpoint {path.name}: config differs from its sidecar", field)
    return doc, digest, payload


def thin_curve(values: Sequence[float], ndigits: int | None = None) -> list[float]:
    """At most MAX_CURVE_POINTS evenly spaced points of a curve (first and last kept), optionally rounded."""
    vals = [float(v) if ndigits is None else round(float(v), ndigits) for v in values]
    if len(vals) <= MAX_CURVE_POINTS:
        return vals
    idx = sorted({round(i * (len(vals) - 1) / (MAX_CURVE_POINTS - 1)) for i in range(MAX_CURVE_POINTS)})
    return [vals[i] for i in idx]


def write_checkpoint(path: str | Path, fmt: str, *, config: Mapping[str, Any], train_config: Mapping[str, Any],
                     state_dict: Mapping[str, torch.Tensor], metrics: Mapping[str, Any],
                     curves: Mapping[str, list[float]], cohort_version: str) -> Path:
    """Write ``<name>.pt`` and its ``<name>.json`` sidecar, each atomically (temporary file + rename);
    returns the ``.pt`` path. ``curves`` go into the sidecar as given (thin them first)."""
    pt = Path(path)
    pt.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": fmt, "config": dict(config), "train_config": dict(train_config),
               "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()}}
    tmp = pt.with_name(pt.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, pt)
    sidecar = {
        "format": fmt,
        "file": pt.name,
        "sha256": file_sha256(pt),
        "size_bytes": pt.stat().st_size,
        "config": dict(config),
        "train_config": dict(train_config),
        "metrics": dict(metrics),
        "cohort_version": cohort_version,
        "curves": dict(curves),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": CODE_VERSION,
    }
    tmp_json = pt.with_name(pt.stem + ".json.tmp")
    tmp_json.write_text(json.dumps(sidecar, indent=2) + "\n")
    os.replace(tmp_json, sidecar_path(pt))
    return pt
