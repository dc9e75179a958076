"""Resample view masks of any size and pixel spacing onto the encoder's fixed mm grid.

The network grid has ``cfg.grid_shape = (H, W)`` cells of ``cfg.grid_spacing_mm`` mm. Row 0
of both the input image and the grid is at the probe (depth 0 mm: pixel centres at
``r · spacing``); the input image's centre column ``(W_in − 1)/2`` maps to the grid's centre
column ``(W − 1)/2``. Each grid cell takes the exact fraction of its area covered by
foreground pixels (separable area-overlap weights), so up- and down-sampling both keep
the mask's mm geometry; anything outside the input field of view is background.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from models.errors import ErrorCode, InputError
from models.geometry.frames import VIEW_NAMES
from models.prior.config import PriorConfig


def overlap_matrix(src_centres_mm: NDArray[np.floating[Any]], src_size_mm: float,
                   dst_centres_mm: NDArray[np.floating[Any]], dst_size_mm: float) -> NDArray[np.float64]:
    """Fraction (D, S) of each destination cell covered by each source cell (1D intervals)."""
    lo = np.maximum(dst_centres_mm[:, None] - dst_size_mm / 2, src_centres_mm[None, :] - src_size_mm / 2)
    hi = np.minimum(dst_centres_mm[:, None] + dst_size_mm / 2, src_centres_mm[None, :] + src_size_mm / 2)
    out: NDArray[np.float64] = np.clip(hi - lo, 0.0, None) / dst_size_mm
    return out


def resampling_weights(image_shape: tuple[int, int], spacing_mm: tuple[float, float],
                       cfg: PriorConfig) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Row weights (Hg, H) and column weights (Wg, W) such that ``grid = Wr @ mask @ Wc.T``."""
    h, w = image_shape
    hg, wg = cfg.grid_shape
    g = cfg.grid_spacing_mm
    sr, sc = spacing_mm
    wr = overlap_matrix(np.arange(h) * sr, sr, np.arange(hg) * g, g)
    wc = overlap_matrix((np.arange(w) - (w - 1) / 2.0) * sc, sc, (np.arange(wg) - (wg - 1) / 2.0) * g, g)
    return wr, wc


def mask_to_grid(mask: NDArray[np.generic], spacing_mm: tuple[float, float], cfg: PriorConfig) -> NDArray[np.float32]:
    """One view's mask (H, W) or cine (T, H, W) → (Hg, Wg) or (T, Hg, Wg) float32 in [0, 1]."""
    arr = np.asarray(mask, dtype=np.float64)
    if arr.ndim not in (2, 3) or min(arr.shape[-2:]) < 1:
        raise InputError(f"a mask must be (H, W) or (T, H, W), got shape {arr.shape}", code=ErrorCode.BAD_DIMENSIONS)
    sr, sc = (float(s) for s in spacing_mm)
    if not (np.isfinite([sr, sc]).all() and sr > 0 and sc > 0):
        raise InputError(f"pixel spacing must be positive, got {spacing_mm}", code=ErrorCode.BAD_SPACING)
    wr, wc = resampling_weights((arr.shape[-2], arr.shape[-1]), (sr, sc), cfg)
    out = np.einsum("gh,...hw,kw->...gk", wr, arr, wc, optimize=True)
    result: NDArray[np.float32] = np.clip(out, 0.0, 1.0).astype(np.float32)
    return result


def masks_to_grid(masks: Mapping[str, NDArray[np.generic]], spacing_mm: Mapping[str, tuple[float, float]],
                  cfg: PriorConfig) -> tuple[Tensor, Tensor]:
    """Per-view masks → network input.

    ``masks[view]`` is (H, W) or (T, H, W) (all views alike; cines must share T), ``spacing_mm[view]``
    is (row, col) mm. Returns (V, Hg, Wg) or (T, V, Hg, Wg) float32 in VIEW_NAMES order (absent
    views are zeros) and ``present`` (V,) bool.
    """
    unknown = [v for v in masks if v not in VIEW_NAMES]
    if unknown:
        raise InputError(f"unknown view(s) {', '.join(map(str, unknown))}", code=ErrorCode.UNKNOWN_VIEW, field="views")
    if not masks:
        raise InputError("at least one view is needed", code=ErrorCode.MISSING_VIEW, field="views")
    ndims = {np.ndim(m) for m in masks.values()}
    if len(ndims) != 1:
        raise InputError("mix of single frames and cines", code=ErrorCode.BAD_DIMENSIONS, field="views")
    lengths = {np.shape(m)[0] for m in masks.values()} if ndims == {3} else {0}
    if len(lengths) != 1:
        raise InputError("views have different frame counts; resample them in time first",
                         code=ErrorCode.FRAME_COUNT_MISMATCH, field="views")
    hg, wg = cfg.grid_shape
    lead = () if ndims == {2} else (lengths.pop(),)
    grid = np.zeros((*lead, len(VIEW_NAMES), hg, wg), dtype=np.float32)
    present = np.zeros(len(VIEW_NAMES), dtype=bool)
    for i, view in enumerate(VIEW_NAMES):
        if view not in masks:
            continue
        if view not in spacing_mm:
            raise InputError(f"no pixel spacing for view {view}", code=ErrorCode.BAD_SPACING, field=f"views.{view}")
        grid[..., i, :, :] = mask_to_grid(masks[view], spacing_mm[view], cfg)
        present[i] = True
    return torch.from_numpy(grid), torch.from_numpy(present)
