"""Measured signals behind the quality gate (pure numpy; no torch, no I/O).

Each function turns one kind of evidence into one number; :mod:`models.quality.gate` compares
the numbers with documented thresholds (docs/report-schema.md).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

CANDIDATE_PROBABILITY = 0.1
"""Pixels with an LV probability above this form the candidate region the confidence is averaged over."""


def segmentation_confidence(probabilities: NDArray[np.floating]) -> float:
    """Mean probability margin ``|2p − 1|`` over the candidate region (p > 0.1) of each frame,
    averaged over frames; probabilities (T, H, W) in [0, 1] → a number in [0, 1].

    1 means every pixel the segmenter considered LV it was sure about (in or out); a wide
    fuzzy rim or a cavity at p ≈ 0.5 lowers it. The confident background far from the LV is
    left out on purpose (it would push every clip towards 1). A frame with no candidate pixel
    scores 0 (the segmenter found nothing there).
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] == 0:
        raise ValueError(f"probabilities must be (T, H, W), got {p.shape}")
    scores = []
    for frame in p:
        region = frame > CANDIDATE_PROBABILITY
        scores.append(float(np.abs(2.0 * frame[region] - 1.0).mean()) if region.any() else 0.0)
    return float(np.mean(scores))


def area_curve(masks: NDArray[np.integer], spacing_mm: tuple[float, float]) -> NDArray[np.float64]:
    """LV area per frame (cm²) of masks (T, H, W) at ``spacing_mm`` (row, col)."""
    m = np.asarray(masks)
    counts = (m.reshape(m.shape[0], -1) > 0).sum(axis=1).astype(np.float64)
    out: NDArray[np.float64] = counts * spacing_mm[0] * spacing_mm[1] / 100.0
    return out


def area_roughness(areas: NDArray[np.floating]) -> float:
    """Largest departure of a frame's area from the mean of its two neighbours, relative to the
    median area: ``max_t |A_t − (A_{t−1} + A_{t+1}) / 2| / median(A)`` (0 for fewer than 3 frames).

    A second difference removes the cardiac trend (a smooth contraction sampled at 20+ frames
    per cycle moves it by a few per cent); a mask that jumps 30 → 10 → 24 cm² scores ≈ 0.7.
    """
    a = np.asarray(areas, dtype=np.float64)
    if a.size < 3:
        return 0.0
    med = float(np.median(a))
    if med <= 0:
        return float("inf")
    return float(np.max(np.abs(a[1:-1] - 0.5 * (a[:-2] + a[2:]))) / med)


def max_area_jump(areas: NDArray[np.floating]) -> float:
    """Largest frame-to-frame change of the area relative to the median area (0 for one frame)."""
    a = np.asarray(areas, dtype=np.float64)
    if a.size < 2:
        return 0.0
    med = float(np.median(a))
    return float(np.max(np.abs(np.diff(a))) / med) if med > 0 else float("inf")


def long_axis_length_mm(mask: NDArray[np.integer], spacing_mm: tuple[float, float]) -> float:
    """Extent (mm) of one mask (H, W) along its principal axis: the LV length in an apical view (0 if empty)."""
    rows, cols = np.nonzero(np.asarray(mask))
    if rows.size < 3:
        return 0.0
    pts = np.stack([rows * spacing_mm[0], cols * spacing_mm[1]], axis=1).astype(np.float64)
    pts -= pts.mean(axis=0)
    axis = np.linalg.eigh(pts.T @ pts)[1][:, -1]
    proj = pts @ axis
    return float(proj.max() - proj.min())


def long_axis_change(masks: NDArray[np.integer], spacing_mm: tuple[float, float]) -> float:
    """``1 − min / max`` of the long-axis length over the frames of masks (T, H, W) that hold a cavity
    (0 with fewer than two such frames).

    A ventricle shortens along its long axis by about 10–20 % (mitral annular excursion over the
    cavity length; an expert's apical contours here: 9 %). A mask that follows the blood across an
    open mitral valve into the atrium for part of the cycle, or loses the apex in some frames, makes
    it jump far beyond that (pydicom's ``ybr_color`` with the session-6 segmenter: 44 %)."""
    lengths = [long_axis_length_mm(m, spacing_mm) for m in np.asarray(masks)]
    lengths = [x for x in lengths if x > 0]
    if len(lengths) < 2:
        return 0.0
    return 1.0 - min(lengths) / max(lengths)


def fractional_area_change(areas: NDArray[np.floating]) -> float:
    """(max − min) / max of an area curve (0 for an empty curve)."""
    a = np.asarray(areas, dtype=np.float64)
    top = float(a.max()) if a.size else 0.0
    return (top - float(a.min())) / top if top > 0 else 0.0


def max_pairwise_spread(values: list[float], relative: bool) -> float:
    """Largest difference between two of ``values`` (divided by their mean when ``relative``); 0 for < 2 values."""
    if len(values) < 2:
        return 0.0
    spread = max(values) - min(values)
    if not relative:
        return float(spread)
    mean = float(np.mean(values))
    return float(spread / mean) if mean > 0 else float("inf")
