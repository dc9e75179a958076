"""The file side of every shipped checkpoint: ``<name>.pt`` beside a ``<name>.json`` sidecar.

The sidecar carries the format tag, the sha256 of the ``.pt`` and the model's config; loaders
verify both before torch ever reads the weights. Shared by the shape prior and the segmenter.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from models.errors import ErrorCode, ModelError


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
