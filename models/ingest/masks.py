"""From label maps (or thresholded grey masks) to clean binary LV cavity cines.

Rules (the same for every format):

* the LV cavity is the configurable label (default 1); a map holding only 0 and 255 (a
  binary PNG/DICOM export) is read as 0/1 when the label is the default 1;
* per frame, the largest 8-connected component is the cavity. Small specks (the rest is
  < 20 % of the foreground) are removed with a warning; when the largest component holds
  less than 80 % of the foreground the mask is ambiguous and rejected (DISCONNECTED_MASK)
  for supplied masks, or reduced to its largest component with a warning for masks our
  segmenter produced;
* holes inside the cavity are filled (with a warning), since a cavity has none.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from models.errors import ErrorCode, InputError
from models.ingest.report import IngestReport

MIN_LARGEST_FRACTION: Final = 0.8
MAX_LABEL_VALUES: Final = 16
_EIGHT: Final = np.ones((3, 3), dtype=bool)


def present_values(arr: NDArray[Any]) -> NDArray[np.int64]:
    """Sorted distinct values of an integer array (bincount for small unsigned types)."""
    if arr.dtype in (np.uint8, np.uint16, np.bool_):
        counts = np.bincount(arr.reshape(-1).astype(np.int64, copy=False))
        return np.flatnonzero(counts).astype(np.int64)
    return np.unique(arr).astype(np.int64)


def looks_like_label_map(frames: NDArray[Any]) -> bool:
    """True when ``frames`` hold few distinct integer values (masks), False for grey images."""
    if frames.dtype == np.bool_:
        return True
    if np.issubdtype(frames.dtype, np.floating):
        if not np.all(np.isfinite(frames)) or not np.array_equal(frames, np.round(frames)):
            return False
    elif not np.issubdtype(frames.dtype, np.integer):
        return False
    sample = frames[:: max(1, frames.shape[0] // 4)]
    return len(np.unique(sample)) <= MAX_LABEL_VALUES


def looks_two_level(frames: NDArray[Any], tolerance: float = 0.08, share: float = 0.995) -> bool:
    """True when ≥ 99.5 % of pixels lie within 8 % of the range from the darkest or brightest value."""
    sample = np.asarray(frames[:: max(1, frames.shape[0] // 4)], dtype=np.float32)
    lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        return False
    band = tolerance * (hi - lo)
    near = (sample <= lo + band) | (sample >= hi - band)
    return bool(near.mean() >= share)


def select_label(labels: NDArray[Any], lv_label: int, where: str) -> NDArray[np.bool_]:
    """The LV cavity (T, H, W) bool of a label map, or a typed error naming the labels present."""
    if labels.dtype == np.bool_:
        if lv_label != 1:
            raise InputError(f"{where} is a binary mask but label {lv_label} was requested",
                             code=ErrorCode.NO_LV_LABEL, field=where)
        return labels
    if np.issubdtype(labels.dtype, np.floating):
        labels = labels.astype(np.int64)
    values = present_values(labels)
    if values.size and values.min() < 0:
        raise InputError(f"{where} holds negative labels; masks must be non-negative integers",
                         code=ErrorCode.NO_LV_LABEL, field=where)
    if lv_label in values:
        return np.asarray(labels == lv_label)
    nonzero = [int(v) for v in values if v != 0]
    if not nonzero:
        raise InputError(f"{where} is empty: no frame holds any foreground (LV cavity) pixel",
                         code=ErrorCode.EMPTY_MASK, field=where)
    if nonzero == [255] and lv_label == 1:
        return np.asarray(labels == 255)
    shown = ", ".join(str(v) for v in nonzero[:10])
    raise InputError(f"{where} has no pixel with the LV label {lv_label} (labels present: {shown}); "
                     "pass the cavity label with --label or the manifest's 'label'",
                     code=ErrorCode.NO_LV_LABEL, field=where)


def threshold_grey(frames: NDArray[Any]) -> NDArray[np.bool_]:
    """Binarise grey masks that went through a lossy codec: foreground above mid-range."""
    lo, hi = float(frames.min()), float(frames.max())
    if hi <= lo:
        return np.zeros(frames.shape, dtype=bool)
    return np.asarray(frames > (lo + hi) / 2.0)


def fill_holes(frame: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Fill background regions (4-connected) that do not touch the image border."""
    bg, n = ndimage.label(~frame)
    if n <= 1:
        return frame
    border = np.unique(np.concatenate([bg[0], bg[-1], bg[:, 0], bg[:, -1]]))
    holes = ~np.isin(bg, border) & (bg > 0)
    return np.asarray(frame | holes)


def clean_masks(fg: NDArray[np.bool_], where: str, report: IngestReport, *, strict: bool = True,
                what: str = "supplied masks") -> NDArray[np.uint8]:
    """Keep the largest 8-connected component per frame and fill its holes → (T, H, W) uint8.

    ``strict`` (supplied masks): several comparable blobs raise DISCONNECTED_MASK. Otherwise
    (segmenter output) the largest blob is kept with a warning. Empty frames raise EMPTY_MASK.
    """
    t = fg.shape[0]
    out = np.zeros(fg.shape, dtype=np.uint8)
    specks: list[int] = []
    split: list[int] = []
    filled: list[int] = []
    for k in range(t):
        frame = fg[k]
        total = int(frame.sum())
        if total == 0:
            raise InputError(f"{where} frame {k} is empty (no LV cavity pixel)", code=ErrorCode.EMPTY_MASK,
                             field=where)
        lab, n = ndimage.label(frame, structure=_EIGHT)
        if n > 1:
            sizes = np.bincount(lab.reshape(-1))[1:]
            best = int(np.argmax(sizes))
            frac = float(sizes[best]) / total
            if frac < MIN_LARGEST_FRACTION:
                if strict:
                    raise InputError(
                        f"{where} frame {k} has {n} separate blobs; the largest holds only {frac:.0%} of the "
                        "foreground, so the LV cavity is ambiguous. Supply one connected cavity per frame",
                        code=ErrorCode.DISCONNECTED_MASK, field=where)
                split.append(k)
            else:
                specks.append(k)
            frame = lab == best + 1
        solid = fill_holes(frame)
        if int(solid.sum()) != int(frame.sum()):
            filled.append(k)
        out[k] = solid
    if specks:
        report.warn(f"{where}: removed small specks outside the LV cavity in {len(specks)} of {t} frames ({what})")
    if split:
        report.warn(f"{where}: several comparable blobs in {len(split)} of {t} frames ({what}); kept the largest")
    if filled:
        report.warn(f"{where}: filled holes inside the LV cavity in {len(filled)} of {t} frames ({what})")
    return out
