"""B-mode-like image synthesis from an LV cavity mask (for training a segmenter on pairs).

Pipeline for one frame (H, W):

1. **echogenicity**: blood pool dark (≈ −42 dB), a bright myocardial band of random thickness
   (7–12 mm) around the cavity, a dark left atrium (ellipse) beyond the mitral base,
   moderately echogenic surrounding tissue with smooth heterogeneity, a bright near-field
   band (chest wall clutter) and a faint epicardial line;
2. **blur** (Gaussian, ≈ 1.2 px: the system's point-spread function on the tissue map);
3. **speckle**: fully developed speckle, i.e. the magnitude of a complex Gaussian field
   low-pass filtered anisotropically (finer along the beam than across it) → Rayleigh
   amplitude statistics;
4. **depth attenuation** ``exp(−a · depth)`` partly compensated by a time-gain ramp;
5. **log compression** to a random dynamic range (45–60 dB) and gain, then the apical
   **fan**: everything outside the sector is 0.

The signature ``synthesize_bmode(mask, rng, ...)`` is stable: the segmentation issue relies
on it. Deterministic for a given ``rng`` state.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from models.geometry.frames import DEFAULT_PIXEL_SPACING_MM
from models.geometry.sector import DEFAULT_HALF_ANGLE_DEG, sector_mask, sector_polar

FloatArray = NDArray[np.float64]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]) -> FloatArray:
    """Gaussian-filtered white noise (H, W) scaled to unit standard deviation."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    std = float(f.std())
    out: FloatArray = f / std if std > 0 else f
    return out


def _atrium(cavity: NDArray[np.bool_], spacing_mm: tuple[float, float], u0: float, u1: float) -> NDArray[np.bool_]:
    """A dark left-atrium ellipse just beyond the cavity's basal end (deepest rows)."""
    if not cavity.any():
        return np.zeros_like(cavity)
    sr, sc = spacing_mm
    rows = np.nonzero(cavity.any(axis=1))[0]
    base = int(rows.max())
    band = cavity[max(base - 4, 0) : base + 1]
    cols = np.nonzero(band.any(axis=0))[0]
    half_w_mm = 0.5 * (cols.max() - cols.min() + 1) * sc
    ry, rx = 16.0 + 8.0 * u0, half_w_mm * (1.0 + 0.3 * u1)
    centre_r = base + (ry + 3.0) / sr
    centre_c = float(cols.mean())
    rr = np.arange(cavity.shape[0], dtype=np.float64)[:, None]
    cc = np.arange(cavity.shape[1], dtype=np.float64)[None, :]
    out: NDArray[np.bool_] = ((rr - centre_r) * sr / ry) ** 2 + ((cc - centre_c) * sc / rx) ** 2 <= 1.0
    return out


def synthesize_bmode(
    mask: NDArray[np.uint8],
    rng: np.random.Generator,
    spacing_mm: tuple[float, float] = DEFAULT_PIXEL_SPACING_MM,
    half_angle_deg: float = DEFAULT_HALF_ANGLE_DEG,
) -> NDArray[np.uint8]:
    """B-mode-like image (H, W) uint8 of an LV cavity ``mask`` (H, W) {0, 1}, row 0 at the probe."""
    if mask.ndim != 2:
        raise ValueError("synthesize_bmode expects one (H, W) mask")
    h, w = mask.shape
    sr, sc = spacing_mm
    u = rng.uniform(0.0, 1.0, size=6)
    hetero = smooth_noise(rng, (h, w), 8.0)
    speckle_re = rng.standard_normal((h, w))
    speckle_im = rng.standard_normal((h, w))

    cavity = mask.astype(bool)
    radius, _ = sector_polar((h, w), spacing_mm)
    wall_mm = 7.0 + 5.0 * u[0]
    empty = not cavity.any()
    d_out = np.full((h, w), np.inf) if empty else ndimage.distance_transform_edt(~cavity, sampling=(sr, sc))
    myo = (d_out > 0) & (d_out <= wall_mm)
    epi = np.exp(-(((d_out - wall_mm) / 1.2) ** 2))
    tissue = 0.35 * np.exp(0.35 * hetero)
    echo = np.where(myo, 0.85 + 0.1 * hetero.clip(-2, 2), tissue)
    echo = np.where(cavity | _atrium(cavity, spacing_mm, u[4], u[5]), 0.008, echo)
    echo = echo + 0.5 * epi + 0.8 * np.exp(-radius / 6.0)  # epicardium, near-field clutter
    echo = ndimage.gaussian_filter(echo, 1.2)

    # Speckle: anisotropic low-pass complex field (axial ~ rows finer than lateral ~ cols).
    sig = (0.7, 1.6)
    re = ndimage.gaussian_filter(speckle_re, sig)
    im = ndimage.gaussian_filter(speckle_im, sig)
    env = np.hypot(re, im)
    env = env / max(float(env.mean()), 1e-12)

    atten_db_per_mm = 0.05 + 0.05 * u[1]  # round-trip attenuation
    tgc_db_per_mm = 0.7 * atten_db_per_mm
    depth_db = -(atten_db_per_mm - tgc_db_per_mm) * radius
    amp = echo * env * 10.0 ** (depth_db / 20.0)

    dyn_range_db = 45.0 + 15.0 * u[2]
    gain_db = -3.0 + 6.0 * u[3]
    level = 20.0 * np.log10(np.maximum(amp, 1e-6)) + gain_db
    img = np.clip((level + dyn_range_db) / dyn_range_db, 0.0, 1.0) * 255.0
    img *= sector_mask((h, w), spacing_mm, half_angle_deg)
    out: NDArray[np.uint8] = np.rint(img).astype(np.uint8)
    return out


def synthesize_bmode_clip(
    masks: NDArray[np.uint8],
    rng: np.random.Generator,
    spacing_mm: tuple[float, float] = DEFAULT_PIXEL_SPACING_MM,
    half_angle_deg: float = DEFAULT_HALF_ANGLE_DEG,
) -> NDArray[np.uint8]:
    """B-mode cine (T, H, W) uint8 of a mask clip (T, H, W), one frame at a time."""
    return np.stack([synthesize_bmode(m, rng, spacing_mm, half_angle_deg) for m in masks])
