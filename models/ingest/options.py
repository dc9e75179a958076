"""The ingest manifest: what the caller knows about each input (view, spacing, timing, label).

A manifest is a JSON object; every key is optional::

    {"view": "A4C", "pixel_spacing_mm": [0.3, 0.3], "fps": 50.0, "label": 1, "kind": "auto",
     "files": {"a2c.mp4": {"view": "A2C", "pixel_spacing_mm": [0.25, 0.25]},
               "a3c_masks/*": {"view": "A3C", "kind": "masks", "label": 3}}}

Top-level values are defaults for every input; ``files`` entries override them for the
inputs whose name, relative path or folder matches the key (shell-style patterns). Values
given in the manifest win over values read from file metadata (a disagreement is reported
as a warning). ``kind`` says whether an input holds masks/label maps (``"masks"``), B-mode
images to segment (``"images"``) or lets ingest decide from the pixel values (``"auto"``).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from models.errors import ErrorCode, InputError
from models.study import validate_fps as study_validate_fps
from models.study import validate_spacing, validate_view_name

Kind = Literal["auto", "masks", "images"]
KINDS: Final[tuple[str, ...]] = ("auto", "masks", "images")
DEFAULT_LV_LABEL: Final = 1
_KEYS: Final = frozenset({"view", "pixel_spacing_mm", "fps", "label", "kind"})


@dataclass(frozen=True)
class FileOptions:
    """Caller-supplied facts about one input; ``None`` means "read it from the file"."""

    view: str | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    fps: float | None = None
    label: int = DEFAULT_LV_LABEL
    kind: Kind = "auto"


def _parse_entry(doc: dict[str, Any], where: str, base: FileOptions) -> FileOptions:
    unknown = sorted(set(doc) - _KEYS - {"files"})
    if unknown:
        raise InputError(f"{where} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}",
                         code=ErrorCode.INVALID_MANIFEST, field=where)
    out = base
    if doc.get("view") is not None:
        out = replace(out, view=validate_view_name(doc["view"], f"{where}.view"))
    if doc.get("pixel_spacing_mm") is not None:
        out = replace(out, pixel_spacing_mm=validate_spacing(doc["pixel_spacing_mm"], f"{where}.pixel_spacing_mm"))
    if doc.get("fps") is not None:
        out = replace(out, fps=validate_fps(doc["fps"], f"{where}.fps"))
    if doc.get("label") is not None:
        label = doc["label"]
        if isinstance(label, bool) or not isinstance(label, int) or not 0 < label < 65536:
            raise InputError(f"{where}.label must be an integer 1–65535 (the LV cavity label), got {label!r}",
                             code=ErrorCode.INVALID_MANIFEST, field=f"{where}.label")
        out = replace(out, label=label)
    if doc.get("kind") is not None:
        if doc["kind"] not in KINDS:
            raise InputError(f"{where}.kind must be one of {', '.join(KINDS)}, got {doc['kind']!r}",
                             code=ErrorCode.INVALID_MANIFEST, field=f"{where}.kind")
        out = replace(out, kind=doc["kind"])
    return out


def validate_fps(value: Any, where: str) -> float:
    """A frame rate in frames per second: finite, 0.1–2000 (the study bundle's rule, BAD_TIMING otherwise)."""
    return study_validate_fps(value, where)


@dataclass(frozen=True)
class IngestManifest:
    """Parsed manifest: defaults plus per-pattern overrides (in the order given)."""

    defaults: FileOptions
    files: tuple[tuple[str, dict[str, Any]], ...] = ()

    def options_for(self, name: str, relpath: str, folder: str) -> FileOptions:
        """Options of the input called ``name`` (basename), at ``relpath`` inside ``folder``."""
        out = self.defaults
        for pattern, entry in self.files:
            if (fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(relpath, pattern)
                    or (folder and (pattern.rstrip("/") == folder or fnmatch.fnmatchcase(folder, pattern)))):
                out = _parse_entry(entry, f"files.{pattern}", out)
        return out


def parse_manifest(manifest: dict[str, Any] | None, *, view: str | None = None,
                   spacing_mm: tuple[float, float] | None = None, fps: float | None = None,
                   label: int | None = None, kind: Kind | None = None) -> IngestManifest:
    """Validate ``manifest`` (``None`` = empty) and fold in keyword defaults (keywords lose to the file)."""
    doc: dict[str, Any] = {} if manifest is None else manifest
    if not isinstance(doc, dict):
        raise InputError("the ingest manifest must be a JSON object", code=ErrorCode.INVALID_MANIFEST, field="manifest")
    base = FileOptions()
    kw = {"view": view, "pixel_spacing_mm": list(spacing_mm) if spacing_mm else None, "fps": fps,
          "label": label, "kind": kind}
    base = _parse_entry({k: v for k, v in kw.items() if v is not None}, "options", base)
    defaults = _parse_entry({k: v for k, v in doc.items() if k != "files"}, "manifest", base)
    files = doc.get("files", {})
    if not isinstance(files, dict):
        raise InputError("manifest.files must map file names (or patterns) to objects",
                         code=ErrorCode.INVALID_MANIFEST, field="manifest.files")
    entries: list[tuple[str, dict[str, Any]]] = []
    for pattern, entry in files.items():
        if not isinstance(entry, dict):
            raise InputError(f"manifest.files.{pattern} must be an object", code=ErrorCode.INVALID_MANIFEST,
                             field=f"manifest.files.{pattern}")
        _parse_entry(entry, f"files.{pattern}", defaults)  # validate early
        entries.append((str(pattern), entry))
    return IngestManifest(defaults, tuple(entries))
