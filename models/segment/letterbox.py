"""Prepare echo frames for the network: fit any (H, W) into its square input, map predictions
back, and normalise intensities.

The frame is scaled (aspect kept) so its longer side is ``size``, placed against the top
edge (row 0 = probe stays row 0) and centred horizontally; the rest is zero, like the
outside of the sector. ``unletterbox`` crops the prediction back and resizes it to (H, W).
``normalise`` divides each frame by the 99th percentile of its non-zero pixels, so a dark
scanner preset (pydicom's ``ybr_color`` has a mean grey level of 10) looks like a bright one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image


@dataclass(frozen=True)
class Box:
    """Where an (H, W) frame sits inside the (size, size) square."""

    shape: tuple[int, int]
    size: int
    height: int
    width: int
    left: int

    @classmethod
    def fit(cls, shape: tuple[int, int], size: int) -> Box:
        h, w = shape
        scale = size / max(h, w)
        height, width = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
        return cls(shape, size, height, width, (size - width) // 2)


def letterbox(frame: NDArray[np.uint8], size: int, *, nearest: bool = False) -> tuple[NDArray[np.uint8], Box]:
    """(H, W) uint8 → (size, size) uint8 and its :class:`Box` (bilinear, or nearest for masks)."""
    box = Box.fit((int(frame.shape[0]), int(frame.shape[1])), size)
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    small = np.asarray(Image.fromarray(np.ascontiguousarray(frame)).resize((box.width, box.height), resample))
    out = np.zeros((size, size), dtype=np.uint8)
    out[: box.height, box.left : box.left + box.width] = small
    return out, box


def unletterbox(prob: NDArray[np.float32], box: Box) -> NDArray[np.float32]:
    """(size, size) float map → (H, W) float map of the original frame (bilinear)."""
    crop = np.ascontiguousarray(prob[: box.height, box.left : box.left + box.width], dtype=np.float32)
    h, w = box.shape
    out: NDArray[np.float32] = np.asarray(Image.fromarray(crop).resize((w, h), Image.Resampling.BILINEAR),
                                          dtype=np.float32)
    return out


def normalise(frames: NDArray[np.uint8]) -> NDArray[np.float32]:
    """(N, H, W) uint8 → float32 in [0, 1], each frame divided by its non-zero 99th percentile."""
    out = np.empty(frames.shape, dtype=np.float32)
    for k, f in enumerate(frames):
        nz = f[f > 0]
        top = float(np.percentile(nz, 99)) if nz.size >= 100 else 255.0
        out[k] = np.clip(f.astype(np.float32) / max(top, 1.0), 0.0, 1.0)
    return out
