"""The study bundle: Echo4D's canonical input format (``echo4d-study/1``).

A bundle is a directory, or a zip of one, holding ``study.json``::

    {"format": "echo4d-study/1",
     "views": {"A4C": {"masks": "A4C.npy", "pixel_spacing_mm": [0.7, 0.7], "fps": 30.0},
               "A2C": {...}, "A3C": {...}}}

and one ``.npy`` per view: masks (T, H, W) uint8, LV cavity = 1, background = 0, row 0 at
the probe. Any non-empty subset of A4C/A2C/A3C is allowed; views need not share T, H, W
or fps (clips are not simultaneous). Ground truth never lives inside a bundle.

Every other input (DICOM, video, NIfTI, PNG) is converted to this form by ``models.ingest``.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import secrets
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from models.archive import check_zip_entries, open_zip, read_zip_member
from models.errors import ErrorCode, InputError
from models.geometry.frames import VIEW_NAMES

STUDY_FORMAT: Final = "echo4d-study/1"
MANIFEST_NAME: Final = "study.json"
MAX_FPS: Final = 2000.0
MIN_FPS: Final = 0.1


@dataclass(frozen=True)
class StudyLimits:
    """Caps applied before any large allocation (configurable by the service's Settings)."""

    max_frames: int = 512
    max_side: int = 2048
    max_voxels_per_view: int = 64 * 1024 * 1024
    max_manifest_bytes: int = 64 * 1024


@dataclass(frozen=True)
class ViewSequence:
    """One apical view's mask cine: masks (T, H, W) uint8 in {0, 1}, row 0 at the probe."""

    name: str
    masks: NDArray[np.uint8]
    pixel_spacing_mm: tuple[float, float]
    fps: float

    @property
    def n_frames(self) -> int:
        return int(self.masks.shape[0])

    @property
    def frame_times_s(self) -> NDArray[np.float64]:
        """Time (T,) of each frame in seconds from the clip's first frame."""
        return np.arange(self.n_frames, dtype=np.float64) / self.fps


@dataclass(frozen=True)
class Study:
    """A validated study: one :class:`ViewSequence` per available view, in VIEW_NAMES order."""

    views: dict[str, ViewSequence]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def view_names(self) -> list[str]:
        return [v for v in VIEW_NAMES if v in self.views]

    @property
    def is_static(self) -> bool:
        """True when every view holds a single frame (a still, e.g. an archived ED frame)."""
        return bool(self.views) and all(v.n_frames == 1 for v in self.views.values())

    def subset(self, names: list[str]) -> Study:
        """The same study restricted to ``names`` (each must be present)."""
        missing = [n for n in names if n not in self.views]
        if missing:
            raise InputError(
                f"view(s) {', '.join(missing)} requested but the study only has {', '.join(self.view_names)}",
                code=ErrorCode.MISSING_VIEW,
                field="views",
            )
        return Study({n: self.views[n] for n in names}, dict(self.meta))


# ----------------------------------------------------------------------------- validation


def _positive_finite(value: Any, what: str, code: ErrorCode) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{what} must be a number, got {type(value).__name__}", code=code, field=what)
    try:
        f = float(value)
    except OverflowError:  # an integer with hundreds of digits
        f = math.inf
    if not math.isfinite(f) or f <= 0:
        raise InputError(f"{what} must be a positive finite number, got {_short(value)}", code=code, field=what)
    return f


def validate_fps(value: Any, where: str) -> float:
    """A frame rate in frames per second: finite, within 0.1–2000 (else BAD_TIMING)."""
    f = _positive_finite(value, where, ErrorCode.BAD_TIMING)
    if not MIN_FPS <= f <= MAX_FPS:
        raise InputError(f"{where} = {f:g} is not a plausible frame rate ({MIN_FPS:g} ≤ fps ≤ {MAX_FPS:g})",
                         code=ErrorCode.BAD_TIMING, field=where)
    return f


def validate_spacing(value: Any, where: str) -> tuple[float, float]:
    """``[row_mm, col_mm]`` → a pair of positive finite floats, else :class:`InputError`."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InputError(f"{where} must be a list [row_mm, col_mm]", code=ErrorCode.BAD_SPACING, field=where)
    row = _positive_finite(value[0], where, ErrorCode.BAD_SPACING)
    col = _positive_finite(value[1], where, ErrorCode.BAD_SPACING)
    if max(row, col) > 10.0 or min(row, col) < 0.01:
        raise InputError(
            f"{where} = {[row, col]} mm per pixel is outside the plausible echo range 0.01–10 mm",
            code=ErrorCode.BAD_SPACING,
            field=where,
        )
    return row, col


def validate_masks(arr: Any, where: str, limits: StudyLimits = StudyLimits()) -> NDArray[np.uint8]:
    """Check a mask cine (T, H, W) and return it as uint8 in {0, 1}.

    Accepts bool or integer arrays holding only 0 and 1. Rejects wrong rank, absurd sizes,
    single frames, and frames that are empty or entirely foreground.
    """
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{where} is not an array", code=ErrorCode.BAD_DTYPE, field=where)
    if arr.ndim != 3:
        raise InputError(
            f"{where} must have shape (T, H, W), got {arr.ndim} dimension(s) {tuple(arr.shape)}",
            code=ErrorCode.BAD_DIMENSIONS,
            field=where,
        )
    t, h, w = (int(s) for s in arr.shape)
    if t > limits.max_frames or max(h, w) > limits.max_side or t * h * w > limits.max_voxels_per_view:
        raise InputError(
            f"{where} shape {(t, h, w)} exceeds the limits ({limits.max_frames} frames, {limits.max_side} px a side)",
            code=ErrorCode.TOO_LARGE,
            field=where,
        )
    if t < 1:
        raise InputError(f"{where} has no frame", code=ErrorCode.SINGLE_FRAME, field=where)
    if min(h, w) < 16:
        raise InputError(
            f"{where} frames are {h}x{w} px; at least 16x16 needed", code=ErrorCode.BAD_DIMENSIONS, field=where
        )
    if arr.dtype != np.bool_ and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{where} must be uint8/bool, got {arr.dtype}", code=ErrorCode.BAD_DTYPE, field=where)
    if arr.dtype != np.bool_ and (arr.min() < 0 or arr.max() > 1):
        raise InputError(
            f"{where} must hold only 0 (background) and 1 (LV cavity), found values up to {int(arr.max())}; "
            "convert multi-label maps with `echo4d ingest --label`",
            code=ErrorCode.NO_LV_LABEL,
            field=where,
        )
    masks = arr.astype(np.uint8, copy=False)
    per_frame = masks.reshape(t, -1).sum(axis=1)
    if (per_frame == 0).any():
        bad = int(np.flatnonzero(per_frame == 0)[0])
        raise InputError(f"{where} frame {bad} is empty (no LV cavity pixel)", code=ErrorCode.EMPTY_MASK, field=where)
    if (per_frame == h * w).any():
        bad = int(np.flatnonzero(per_frame == h * w)[0])
        raise InputError(f"{where} frame {bad} is entirely foreground", code=ErrorCode.FULL_MASK, field=where)
    return masks


def validate_view_name(name: Any, where: str = "views") -> str:
    if name not in VIEW_NAMES:
        raise InputError(
            f"unknown view {name!r}; expected one of {', '.join(VIEW_NAMES)}", code=ErrorCode.UNKNOWN_VIEW, field=where
        )
    return str(name)


def parse_manifest(raw: bytes, limits: StudyLimits = StudyLimits()) -> dict[str, Any]:
    """Parse and structurally validate ``study.json`` (no array is read here)."""
    if len(raw) > limits.max_manifest_bytes:
        raise InputError("study.json is larger than 64 KiB", code=ErrorCode.TOO_LARGE, field=MANIFEST_NAME)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8/JSON, 4300+ digit integers, deep nesting
        raise InputError(f"study.json is not valid UTF-8 JSON: {_short(exc, 120)}", code=ErrorCode.INVALID_MANIFEST,
                         field=MANIFEST_NAME) from None
    if not isinstance(doc, dict):
        raise InputError("study.json must be a JSON object", code=ErrorCode.INVALID_MANIFEST, field=MANIFEST_NAME)
    if doc.get("format") != STUDY_FORMAT:
        raise InputError(
            f"study.json format must be {STUDY_FORMAT!r}, got {_short(doc.get('format'))}",
            code=ErrorCode.INVALID_MANIFEST,
            field="format",
        )
    views = doc.get("views")
    if not isinstance(views, dict) or not views:
        raise InputError("study.json 'views' must be a non-empty object", code=ErrorCode.MISSING_VIEW, field="views")
    for name, spec in views.items():
        validate_view_name(name, f"views.{name}")
        if not isinstance(spec, dict):
            raise InputError(f"views.{name} must be an object", code=ErrorCode.INVALID_MANIFEST, field=f"views.{name}")
        masks = spec.get("masks")
        if not isinstance(masks, str) or not _safe_member(masks) or not masks.endswith(".npy"):
            raise InputError(
                f"views.{name}.masks must be a relative .npy file name inside the bundle, got {_short(masks)}",
                code=ErrorCode.INVALID_MANIFEST,
                field=f"views.{name}.masks",
            )
        validate_spacing(spec.get("pixel_spacing_mm"), f"views.{name}.pixel_spacing_mm")
        validate_fps(spec.get("fps"), f"views.{name}.fps")
    return doc


def _short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: messages never echo kilobytes of hostile input."""
    text = value if isinstance(value, BaseException) else repr(value)
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _safe_member(name: str) -> bool:
    """A relative path that stays inside the bundle (no ``..``, root, drive, backslash or control character)."""
    p = PurePosixPath(name)
    return (0 < len(name) <= 255 and not p.is_absolute() and ".." not in p.parts and "\\" not in name
            and not re.match(r"^[A-Za-z]:", name) and not any(ord(ch) < 32 for ch in name))


def _load_npy(raw: bytes, where: str, limits: StudyLimits) -> NDArray[Any]:
    """Read a .npy from bytes after checking its header (shape, dtype, data length) against the limits.

    Never unpickles, and allocates nothing a header declares until the limits and the byte count agree.
    """
    buf = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(buf)
        read_header = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(buf)  # the header only, no data yet
    except Exception:
        raise InputError(f"{where} is not a valid .npy file", code=ErrorCode.CORRUPT_FILE, field=where) from None
    if dtype.hasobject or dtype.kind not in "biu":
        raise InputError(f"{where} has dtype {_short(str(dtype))}; masks must be uint8 or bool (never Python objects)",
                         code=ErrorCode.BAD_DTYPE, field=where)
    if any(d < 0 for d in shape):
        raise InputError(f"{where} declares a negative shape", code=ErrorCode.CORRUPT_FILE, field=where)
    n = math.prod(shape)  # Python ints: no int64 wrap-around
    if n > limits.max_voxels_per_view or (len(shape) == 3 and shape[0] > limits.max_frames):
        raise InputError(f"{where} shape {_short(tuple(shape))} exceeds the size limits", code=ErrorCode.TOO_LARGE,
                         field=where)
    if len(raw) - buf.tell() < n * dtype.itemsize:
        raise InputError(f"{where} is truncated (its data is shorter than its header declares)",
                         code=ErrorCode.CORRUPT_FILE, field=where)
    buf.seek(0)
    try:
        arr = np.load(buf, allow_pickle=False)
    except Exception:
        raise InputError(f"{where} is truncated or corrupt", code=ErrorCode.CORRUPT_FILE, field=where) from None
    return np.asarray(arr)


def study_from_manifest(
    doc: Mapping[str, Any], read_member: Any, limits: StudyLimits = StudyLimits()
) -> Study:
    """Build a :class:`Study` from a parsed manifest; ``read_member(name) -> bytes``."""
    views: dict[str, ViewSequence] = {}
    for name in VIEW_NAMES:
        spec = doc["views"].get(name)
        if spec is None:
            continue
        where = f"views.{name}.masks"
        try:
            raw = read_member(spec["masks"])
        except (KeyError, FileNotFoundError):
            raise InputError(f"{spec['masks']} named by {where} is not in the bundle", code=ErrorCode.INVALID_STUDY,
                             field=where) from None
        masks = validate_masks(_load_npy(raw, where, limits), where, limits)
        views[name] = ViewSequence(
            name=name,
            masks=masks,
            pixel_spacing_mm=validate_spacing(spec["pixel_spacing_mm"], f"views.{name}.pixel_spacing_mm"),
            fps=validate_fps(spec["fps"], f"views.{name}.fps"),
        )
    check_static_or_cine(views)
    meta = {k: v for k, v in doc.items() if k not in ("format", "views")}
    return Study(views=views, meta=meta)


STATIC_PHASES: Final = ("ED", "ES")
"""What a static study's single frame may be declared as (``study.json`` key ``static_phase``)."""


def check_static_or_cine(views: Mapping[str, ViewSequence]) -> None:
    """Either every view is a single frame (a static study, reconstructed in 3D) or every view is
    a cine of at least 2 frames; a mix is refused (``single_frame``): there is no cycle to put
    the still on."""
    singles = [n for n, v in views.items() if v.n_frames == 1]
    if singles and len(singles) < len(views):
        raise InputError(f"view(s) {', '.join(singles)} hold a single frame while the others are cines; a static "
                         "(3D) study needs one frame in every view", code=ErrorCode.SINGLE_FRAME,
                         field=f"views.{singles[0]}.masks")


def _max_npy_bytes(limits: StudyLimits) -> int:
    return limits.max_voxels_per_view + 4096  # uint8 masks plus the .npy header


def read_bundle_file(root: Path, name: str, max_bytes: int) -> bytes:
    """The bytes of ``root/name``: a regular file inside ``root`` (symlinks may not leave it), ≤ ``max_bytes``.

    Raises ``KeyError`` when it does not exist, :class:`InputError` otherwise. Devices and FIFOs are
    refused before they are opened (reading ``/dev/zero`` or a pipe would never end).
    """
    try:
        target = (root / name).resolve(strict=True)
        inside = target.is_relative_to(root.resolve(strict=True))
        st = target.stat()
    except FileNotFoundError:
        raise KeyError(name) from None
    except (OSError, RuntimeError, ValueError):  # symlink loop, name too long, permission
        raise InputError(f"{_short(name)} cannot be read from the bundle folder", code=ErrorCode.INVALID_STUDY,
                         field=name) from None
    if not inside:
        raise InputError(f"{_short(name)} is a link pointing outside the bundle folder", code=ErrorCode.INVALID_STUDY,
                         field=name)
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{_short(name)} is not a regular file", code=ErrorCode.INVALID_STUDY, field=name)
    if st.st_size > max_bytes:
        raise InputError(f"{_short(name)} is {st.st_size} bytes, beyond the {max_bytes}-byte limit",
                         code=ErrorCode.TOO_LARGE, field=name)
    try:
        with target.open("rb") as f:
            data = f.read(st.st_size + 1)  # read(n) reserves n bytes up front: never the cap itself
    except OSError:
        raise InputError(f"{_short(name)} cannot be read from the bundle folder", code=ErrorCode.INVALID_STUDY,
                         field=name) from None
    if len(data) > max_bytes:
        raise InputError(f"{_short(name)} grew beyond the {max_bytes}-byte limit while read",
                         code=ErrorCode.TOO_LARGE, field=name)
    return data


def load_study(path: str | Path, limits: StudyLimits = StudyLimits()) -> Study:
    """Load and validate a study bundle from a directory or a ``.zip``.

    Raises :class:`InputError` with a stable code naming the offending field.
    """
    p = Path(path)
    if p.is_dir():
        try:
            raw = read_bundle_file(p, MANIFEST_NAME, limits.max_manifest_bytes)
        except KeyError:
            raise InputError(f"{p.name}/ has no {MANIFEST_NAME}", code=ErrorCode.INVALID_MANIFEST,
                             field=MANIFEST_NAME) from None
        doc = parse_manifest(raw, limits)
        return study_from_manifest(doc, lambda n: read_bundle_file(p, n, _max_npy_bytes(limits)), limits)
    if p.is_file() and zipfile.is_zipfile(p):
        with open_zip(p, "study") as zf:
            return load_study_zip(zf, limits)
    if p.exists():
        raise InputError(f"{p.name} is neither a study directory nor a zip", code=ErrorCode.UNSUPPORTED_FORMAT,
                         field="study")
    raise InputError(f"{p} does not exist", code=ErrorCode.INVALID_STUDY, field="study")


def load_study_zip(zf: zipfile.ZipFile, limits: StudyLimits = StudyLimits()) -> Study:
    """Load a bundle from an open zip; the manifest may sit at the root or in one top folder."""
    names = check_zip_entries(zf, "study")
    candidates = [n for n in names if PurePosixPath(n).name == MANIFEST_NAME and len(PurePosixPath(n).parts) <= 2]
    if len(candidates) != 1:
        raise InputError("the zip must contain exactly one study.json (at its root or in one folder)",
                         code=ErrorCode.INVALID_MANIFEST, field=MANIFEST_NAME)
    prefix = str(PurePosixPath(candidates[0]).parent)
    prefix = "" if prefix == "." else prefix + "/"

    def read(member: str, max_bytes: int = _max_npy_bytes(limits)) -> bytes:
        info = names.get(prefix + member)
        if info is None:
            raise KeyError(member)
        return read_zip_member(zf, info, max_bytes, member)

    doc = parse_manifest(read(MANIFEST_NAME, limits.max_manifest_bytes), limits)
    return study_from_manifest(doc, read, limits)


def _replace_file(path: Path, data: bytes) -> None:
    """Write ``data`` to a fresh file beside ``path`` and rename it over ``path``: never writes through a
    symlink (or into a FIFO) already sitting at ``path``, and readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)  # mode as np.save: umask
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def save_study(study: Study, out_dir: str | Path) -> Path:
    """Write ``study`` as a bundle directory; returns the manifest path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    views: dict[str, Any] = {}
    for name in study.view_names:
        v = study.views[name]
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(v.masks, dtype=np.uint8))
        _replace_file(out / f"{name}.npy", buf.getvalue())
        views[name] = {"masks": f"{name}.npy", "pixel_spacing_mm": list(v.pixel_spacing_mm), "fps": float(v.fps)}
    doc: dict[str, Any] = {"format": STUDY_FORMAT, "views": views, **study.meta}
    manifest = out / MANIFEST_NAME
    _replace_file(manifest, (json.dumps(doc, indent=2) + "\n").encode())
    return manifest
