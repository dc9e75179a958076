"""The intermediate form every reader produces, and the size checks done before decoding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from models.errors import ErrorCode, InputError
from models.ingest.options import FileOptions
from models.ingest.report import SourceReport
from models.ingest.sniff import Format
from models.study import StudyLimits

Region = tuple[int, int, int, int]


@dataclass(frozen=True)
class InputItem:
    """One input file, read into memory (its size was capped before reading)."""

    name: str  # base name, for manifest matching and error fields
    relpath: str  # path inside the folder/zip it came from (== name for a plain file)
    folder: str  # containing folder inside that folder/zip ('' at the top)
    data: bytes
    fmt: Format


@dataclass
class Decoded:
    """A decoded cine before it becomes masks.

    ``frames`` (T, H, W): an integer label map when ``kind == "masks"``, uint8 grey B-mode
    when ``kind == "images"``. ``region`` is the (row0, col0, row1, col1) inclusive imaging
    area (outside it: burned-in text, ECG, scales) when the file says where it is.
    """

    frames: NDArray[Any]
    kind: Literal["masks", "images"]
    options: FileOptions
    source: SourceReport
    spacing_mm: tuple[float, float] | None = None
    spacing_source: str = "none"
    fps: float | None = None
    fps_source: str = "none"
    view: str | None = None
    view_source: str = "none"
    region: Region | None = None
    lossy_masks: bool = False


def max_file_bytes(limits: StudyLimits) -> int:
    """Largest input file read into memory: a full view at 8 bytes per voxel, plus headers."""
    return limits.max_voxels_per_view * 8 + (1 << 20)


def check_cine_size(t: int, h: int, w: int, where: str, limits: StudyLimits, *, field: str | None = None) -> None:
    """Reject absurd or degenerate cines from their header, before any pixel is decoded."""
    f = field or where
    if min(t, h, w) <= 0:
        raise InputError(f"{where} declares an empty image ({t} frames of {h}×{w})", code=ErrorCode.BAD_DIMENSIONS,
                         field=f)
    if t > limits.max_frames or max(h, w) > limits.max_side or t * h * w > limits.max_voxels_per_view:
        raise InputError(f"{where} holds {t} frames of {h}×{w} px, beyond the limits ({limits.max_frames} frames, "
                         f"{limits.max_side} px a side, {limits.max_voxels_per_view} voxels); crop or subsample it",
                         code=ErrorCode.TOO_LARGE, field=f)
    if t < 2:
        raise InputError(f"{where} holds a single frame; a cine of at least 2 frames (one cardiac cycle) is needed",
                         code=ErrorCode.SINGLE_FRAME, field=f)
    if min(h, w) < 16:
        raise InputError(f"{where} frames are {h}×{w} px; at least 16×16 are needed", code=ErrorCode.BAD_DIMENSIONS,
                         field=f)


def to_grey_uint8(frames: NDArray[Any]) -> NDArray[np.uint8]:
    """(T, H, W) or (T, H, W, C) pixels → (T, H, W) uint8 grey (luminance for colour, min–max for wide types)."""
    arr = frames
    if arr.ndim == 4:
        if arr.shape[-1] >= 3:
            rgb = arr[..., :3].astype(np.float32)
            arr = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        else:
            arr = arr[..., 0]
    if arr.dtype == np.uint8:
        return arr
    a = arr.astype(np.float32)
    if np.issubdtype(frames.dtype, np.floating) or a.max() > 255 or a.min() < 0:
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        if lo >= 0 and hi <= 255:
            lo, hi = 0.0, 255.0
        a = (a - lo) * (255.0 / max(hi - lo, 1e-6))
    out: NDArray[np.uint8] = np.clip(np.nan_to_num(a) + 0.5, 0, 255).astype(np.uint8)
    return out


def decide_kind(frames: NDArray[Any], options: FileOptions, *, lossy_codec: bool = False
                ) -> tuple[Literal["masks", "images"], bool]:
    """(kind, lossy): are ``frames`` masks (label maps) or B-mode images, and must masks be thresholded?

    Lossless sources: masks if the caller says so or the values look like a label map (few
    distinct integers); caller-declared masks that do not look like labels are thresholded.
    Lossy sources (JPEG DICOM, video): label values do not survive the codec, so masks are
    always thresholded at mid-range; in ``auto`` mode a source is masks when nearly every
    pixel sits close to its darkest or brightest value (a two-level picture), else images.
    """
    from models.ingest.masks import looks_like_label_map, looks_two_level

    if options.kind == "images":
        return "images", False
    if lossy_codec:
        if options.kind == "masks" or looks_two_level(frames):
            return "masks", True
        return "images", False
    label_like = looks_like_label_map(frames)
    if options.kind == "masks":
        return "masks", not label_like
    return ("masks", False) if label_like else ("images", False)
