"""Mask corruption: make clean simulated LV masks look like a segmentation network's output.

All effects act on one view's clip (T, H, W) at once so they are temporally coherent where a
network would be (a missed wall stays missed) and incoherent where it flickers:

* **boundary jitter**: the contour moves along its normal by a smooth random field
  (Gaussian-filtered noise, a few px) that drifts slowly over the cycle — implemented as a
  threshold of the mask's signed distance map plus the field;
* **lateral-wall dropout**: on the +column side (lateral wall in A4C) the contour leaks
  outward or cuts inward by several px over the mid cavity (echo dropout of that wall);
* **apical dropout / truncation**: the near-field apex is cut at a fixed image depth;
* **holes**: small discs of false background inside the cavity (dark speckle in blood);
* **temporal flicker**: random frames are eroded / dilated by a px or two.

``severity`` ∈ [0, 1] scales amplitudes and probabilities (0 = no change, 0.5 = default).
A corrupted frame that loses more than 80 % of its area falls back to the clean frame, so
frames never become empty. Deterministic for a given ``rng`` state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

FloatArray = NDArray[np.float64]
DEFAULT_SEVERITY = 0.5


@dataclass(frozen=True)
class CorruptionConfig:
    """Amplitudes at severity 1 (px) and probabilities at severity 1."""

    jitter_px: float = 4.0
    jitter_smooth_px: float = 10.0
    lateral_dropout_prob: float = 0.8
    lateral_dropout_px: float = 10.0
    apical_dropout_prob: float = 0.6
    apical_dropout_px: float = 16.0
    holes_per_frame: float = 1.2
    hole_radius_px: float = 3.5
    flicker_prob: float = 0.3
    flicker_px: float = 2.5

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def signed_distance_2d(mask: NDArray[np.uint8]) -> FloatArray:
    """Pixel signed distance (H, W) to the mask boundary, negative inside."""
    inside = mask.astype(bool)
    out: FloatArray = ndimage.distance_transform_edt(~inside) - ndimage.distance_transform_edt(inside)
    return out


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> FloatArray:
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    std = float(field.std())
    out: FloatArray = field / std if std > 0 else field
    return out


def corrupt_masks(
    masks: NDArray[np.uint8],
    rng: np.random.Generator,
    severity: float = DEFAULT_SEVERITY,
    config: CorruptionConfig = CorruptionConfig(),
) -> NDArray[np.uint8]:
    """Corrupt one view's clean mask clip (T, H, W) uint8 → (T, H, W) uint8 {0, 1}."""
    if masks.ndim != 3:
        raise ValueError("corrupt_masks expects (T, H, W) masks")
    if not 0.0 <= severity <= 1.0:
        raise ValueError("severity must be within [0, 1]")
    t, h, w = masks.shape
    cfg = config
    # Fixed-order draws.
    n_a = _smooth_noise(rng, (h, w), cfg.jitter_smooth_px)
    n_b = _smooth_noise(rng, (h, w), cfg.jitter_smooth_px)
    drift_phase = float(rng.uniform(0.0, 2.0 * np.pi))
    u = rng.uniform(0.0, 1.0, size=6)
    flick = rng.uniform(0.0, 1.0, size=(t, 2))
    n_holes: NDArray[np.int64] = np.asarray(rng.poisson(cfg.holes_per_frame * severity, size=t), dtype=np.int64)
    hole_u = rng.uniform(0.0, 1.0, size=(t, 8, 2))

    if severity == 0.0:
        return masks.astype(np.uint8, copy=True)
    rows = np.arange(h, dtype=np.float64)[:, None]
    cols = np.arange(w, dtype=np.float64)[None, :]
    union = masks.any(axis=0)
    if not union.any():
        return masks.astype(np.uint8, copy=True)
    r_idx, c_idx = np.nonzero(union)
    r_top, r_bot = float(r_idx.min()), float(r_idx.max())
    c_mid = float(c_idx.mean())

    # Lateral-wall dropout field (+column side, mid cavity), signed: > 0 cuts in, < 0 leaks out.
    lateral = np.zeros((h, w))
    if u[0] < cfg.lateral_dropout_prob * severity:
        amp = cfg.lateral_dropout_px * severity * (0.4 + 0.6 * u[1]) * (1.0 if u[2] < 0.5 else -1.0)
        mid = 0.5 * (r_top + r_bot)
        half = 0.3 * max(r_bot - r_top, 1.0)
        lateral = amp * (1.0 / (1.0 + np.exp(-(cols - c_mid) / 4.0))) * np.exp(-(((rows - mid) / half) ** 2))
    apex_cut = -1.0
    if u[3] < cfg.apical_dropout_prob * severity:
        apex_cut = r_top + cfg.apical_dropout_px * severity * (0.3 + 0.7 * u[4])

    out = np.empty_like(masks, dtype=np.uint8)
    amp_j = cfg.jitter_px * severity
    for k in range(t):
        clean = masks[k]
        if not clean.any():
            out[k] = clean
            continue
        lam = 0.5 * (1.0 + np.sin(drift_phase + 2.0 * np.pi * k / t))
        delta = amp_j * ((1.0 - lam) * n_a + lam * n_b) * 0.5 + lateral
        if flick[k, 0] < cfg.flicker_prob * severity:
            delta = delta + cfg.flicker_px * (2.0 * flick[k, 1] - 1.0)
        frame = (signed_distance_2d(clean) + delta < 0.0).astype(np.uint8)
        if apex_cut > 0:
            frame[: int(np.ceil(apex_cut)), :] = 0
        inside_r, inside_c = np.nonzero(frame)
        for j in range(min(int(n_holes[k]), hole_u.shape[1])):
            if len(inside_r) == 0:
                break
            idx = int(hole_u[k, j, 0] * len(inside_r)) % len(inside_r)
            rad = cfg.hole_radius_px * (0.5 + hole_u[k, j, 1])
            disc = (rows - inside_r[idx]) ** 2 + (cols - inside_c[idx]) ** 2 <= rad**2
            frame[disc] = 0
        if frame.sum() < 0.2 * clean.sum():
            frame = clean.astype(np.uint8, copy=True)
        out[k] = frame
    return out


def dice(a: NDArray[np.uint8], b: NDArray[np.uint8]) -> float:
    """Dice overlap of two binary arrays of the same shape (1.0 when both are empty)."""
    aa, bb = a.astype(bool), b.astype(bool)
    denom = int(aa.sum()) + int(bb.sum())
    return 1.0 if denom == 0 else 2.0 * float((aa & bb).sum()) / denom
