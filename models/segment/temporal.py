"""Temporal consistency of per-frame LV probabilities along a cine.

A network that sees one frame at a time can lose the cavity in a single frame (a dark or
cluttered frame: the area then jumps 30 → 10 → 24 cm²). The heart moves little between two
frames at 25–60 fps, so each pixel's probability is filtered along time: a running median over
``window`` frames (removes one-frame collapses and one-frame leaks) followed by a Gaussian of
``sigma`` frames (smooths the area curve). The ends are padded by reflection. Both
``segment`` (= probability > 0.5) and ``probabilities`` of the runtime segmenters return the
filtered maps, so the quality gate's confidence reads the same thing the masks come from.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

DEFAULT_WINDOW = 3
DEFAULT_SIGMA = 0.7


def smooth_probabilities(prob: NDArray[np.float32], window: int = DEFAULT_WINDOW, sigma: float = DEFAULT_SIGMA
                         ) -> NDArray[np.float32]:
    """(T, H, W) float probabilities → (T, H, W) float32 filtered along T (unchanged when T < window)."""
    if prob.ndim != 3:
        raise ValueError("smooth_probabilities expects (T, H, W)")
    if prob.shape[0] < max(window, 2):
        return prob.astype(np.float32, copy=False)
    out = ndimage.median_filter(prob, size=(window, 1, 1), mode="reflect") if window > 1 else prob
    if sigma > 0:
        out = ndimage.gaussian_filter1d(out, sigma, axis=0, mode="reflect")
    result: NDArray[np.float32] = np.clip(out, 0.0, 1.0).astype(np.float32)
    return result
