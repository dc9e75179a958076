"""Does the segmentation hold when the acquisition changes? (a bias-sensitive quality signal).

A confident, smooth, view-consistent segmentation can still be biased: the session-4 quality
bench found synthetic B-mode cases with EF 7–13 points off whose masks scored 0.95 confidence.
What such a segmentation lacks is *stability*: where the border is decided by the grey level
the segmenter happened to see (a dim endocardium, trabeculae, a dropout), a change of gain or
resolution that a sonographer makes every day moves it. This module re-segments the clip under
a few such changes and measures how far the fractional area change (FAC, the 2-D surrogate of EF)
moves:

    fac_spread = max over variants |FAC(variant) − FAC(as acquired)|

Variants (pure numpy on uint8 grey, 0 stays 0 outside the sector): gain down and up
(grey-level gamma 1.5 and 0.67: compression and receiver gain) and a coarser resolution
(Gaussian blur, σ = 1 px). Torch-free: the segmenter comes in through its protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
from numpy.typing import NDArray

from models.quality.signals import fractional_area_change
from models.segment.protocol import Segmenter

GreyFrames = NDArray[np.uint8]


def _gamma(gamma: float) -> Callable[[GreyFrames], GreyFrames]:
    lut = np.clip(np.round(255.0 * (np.arange(256) / 255.0) ** gamma), 0, 255).astype(np.uint8)

    def apply(frames: GreyFrames) -> GreyFrames:
        out: GreyFrames = lut[frames]
        return out

    return apply


_KERNEL: Final = np.exp(-0.5 * np.arange(-2, 3) ** 2) / np.exp(-0.5 * np.arange(-2, 3) ** 2).sum()
"""Gaussian, σ = 1 px, truncated at 2σ."""


def _blur(frames: GreyFrames) -> GreyFrames:
    smooth = frames.astype(np.float32)
    for axis in (1, 2):
        padded = np.pad(smooth, [(2, 2) if a == axis else (0, 0) for a in range(3)], mode="edge")
        length = smooth.shape[axis]
        smooth = sum(w * np.take(padded, np.arange(k, k + length), axis=axis) for k, w in enumerate(_KERNEL))
    out: GreyFrames = np.where(frames > 0, np.clip(np.round(smooth), 0, 255), 0).astype(np.uint8)
    return out


ACQUISITION_VARIANTS: Final[dict[str, Callable[[GreyFrames], GreyFrames]]] = {
    "gain_down": _gamma(1.5),
    "gain_up": _gamma(1 / 1.5),
    "blur": _blur,
}
"""Name → transform of (T, H, W) uint8 grey frames (same shape and dtype)."""


def mask_fac(masks: NDArray[np.integer] | NDArray[np.bool_]) -> float:
    """FAC of masks (T, H, W) from their pixel counts (spacing cancels in the ratio)."""
    m = np.asarray(masks)
    return fractional_area_change((m.reshape(m.shape[0], -1) > 0).sum(axis=1).astype(np.float64))


def fac_spread(segmenter: Segmenter, frames: GreyFrames, masks: NDArray[np.integer] | NDArray[np.bool_]) -> float:
    """Largest change of the FAC when ``frames`` (T, H, W) uint8 are re-segmented under each of
    :data:`ACQUISITION_VARIANTS`, against the FAC of ``masks`` (T, H, W): the segmenter's masks of
    the frames as acquired. 0 for a single frame (no FAC)."""
    if frames.shape[0] < 2:
        return 0.0
    base = mask_fac(masks)
    spreads = [abs(mask_fac(np.asarray(segmenter.probabilities(vary(frames))) > 0.5) - base)
               for vary in ACQUISITION_VARIANTS.values()]
    return float(max(spreads))
