"""A physics-grounded B-mode renderer: echogenicity map → scan-converted grey image.

For one frame, with the probe at image row 0, centre column (as ``models.geometry.sector``):

1. the echogenicity map (H, W) is resampled onto the **polar (beam) grid** (range samples
   ``dr_mm`` apart × ``n_beams`` lines across the sector);
2. **scatterers**: a complex Gaussian field weighted by the echogenicity (fully developed
   speckle), with lateral **wall dropout** (beams nearly parallel to a wall return little) and
   rib **shadowing** (a band of beams attenuated beyond some depth);
3. convolution with the **point-spread function**: Gaussian pulse envelope along the beam,
   Gaussian beam profile across it whose width grows away from the focus
   (``w(r) = w0·sqrt(1 + ((r − focus)/z_R)²)``), applied as a depth-dependent filter in the
   polar domain (a few filtered levels, interpolated per range);
4. envelope detection, incoherent **reverberation clutter** in the near field (haze and
   multiples, over the apex), electronic noise;
5. **attenuation** ``exp(−a·r)`` partly compensated by the time-gain control (plus random
   TGC slider bumps), **log compression** to a dynamic range, gain, and a grey map (gamma);
6. **scan conversion** back to the (H, W) Cartesian image (bilinear), zero outside the fan.

:func:`burn_in` adds screen furniture (text, an ECG trace, a grey bar, depth ticks).
:func:`sample_acquisition` draws the domain-randomised settings. Vectorised numpy/scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from scipy import ndimage

FloatArray = NDArray[np.float64]
N_LEVELS = 4


@dataclass(frozen=True)
class Acquisition:
    """Scanner settings for one clip (lengths in mm, levels in dB)."""

    half_angle_deg: float = 40.0
    n_beams: int = 160
    dr_mm: float = 0.35
    pulse_sigma_mm: float = 0.35
    beam_w0_mm: float = 0.9
    focus_mm: float = 70.0
    rayleigh_mm: float = 30.0
    atten_db_per_mm: float = 0.08
    tgc_compensation: float = 0.8
    dynamic_range_db: float = 42.0
    gain_db: float = -3.0
    gamma: float = 1.5
    noise_db: float = -45.0
    clutter: float = 0.15
    clutter_depth_mm: float = 25.0
    dropout: float = 0.0
    shadow: float = 0.0


def sample_acquisition(rng: np.random.Generator) -> Acquisition:
    """Domain-randomised settings (sector, PSF, attenuation, compression, clutter, dropout)."""
    return Acquisition(
        half_angle_deg=float(rng.uniform(30.0, 45.0)),
        n_beams=int(rng.integers(96, 200)),
        dr_mm=float(rng.uniform(0.25, 0.45)),
        pulse_sigma_mm=float(rng.uniform(0.15, 0.45)),
        beam_w0_mm=float(rng.uniform(0.4, 1.2)),
        focus_mm=float(rng.uniform(40.0, 110.0)),
        rayleigh_mm=float(rng.uniform(15.0, 45.0)),
        atten_db_per_mm=float(rng.uniform(0.04, 0.12)),
        tgc_compensation=float(rng.uniform(0.6, 1.05)),
        dynamic_range_db=float(rng.uniform(30.0, 55.0)),
        gain_db=float(rng.uniform(-10.0, 3.0)),
        gamma=float(np.exp(rng.uniform(math.log(0.9), math.log(2.4)))),
        noise_db=float(rng.uniform(-60.0, -30.0)),
        clutter=float(rng.uniform(0.0, 0.6) ** 1.5),
        clutter_depth_mm=float(rng.uniform(10.0, 45.0)),
        dropout=float(rng.uniform(0.0, 0.85) if rng.uniform() < 0.7 else 0.0),
        shadow=float(rng.uniform(0.5, 0.9) if rng.uniform() < 0.25 else 0.0),
    )


def _polar_grid(depth_mm: float, acq: Acquisition) -> tuple[FloatArray, FloatArray]:
    r = np.arange(0.0, depth_mm + acq.dr_mm, acq.dr_mm)
    th = np.linspace(-math.radians(acq.half_angle_deg), math.radians(acq.half_angle_deg), acq.n_beams)
    return r, th


def _gauss_norm(sigma: float) -> float:
    """Output std of a unit white field after ``gaussian_filter1d(sigma)`` (to keep speckle power)."""
    if sigma < 1e-3:
        return 1.0
    impulse = np.zeros(int(8 * sigma) * 2 + 3)
    impulse[len(impulse) // 2] = 1.0
    return float(np.sqrt((ndimage.gaussian_filter1d(impulse, sigma) ** 2).sum()))


def _complex_filter(z: NDArray[np.complex128], sigma: float, axis: int) -> NDArray[np.complex128]:
    if sigma < 0.3:
        return z
    re = ndimage.gaussian_filter1d(z.real, sigma, axis=axis, mode="nearest")
    im = ndimage.gaussian_filter1d(z.imag, sigma, axis=axis, mode="nearest")
    out: NDArray[np.complex128] = np.asarray((re + 1j * im) / _gauss_norm(sigma), dtype=np.complex128)
    return out


def _lateral_psf(z: NDArray[np.complex128], r: FloatArray, dtheta: float, acq: Acquisition) -> NDArray[np.complex128]:
    """Depth-dependent lateral blur: beam width w(r) (mm) → angular sigma in beams, blended per range."""
    w = acq.beam_w0_mm * np.sqrt(1.0 + ((r - acq.focus_mm) / acq.rayleigh_mm) ** 2)
    sig = np.clip(w / (np.maximum(r, 5.0) * dtheta), 0.3, 12.0)
    levels = np.geomspace(float(sig.min()), float(sig.max()) + 1e-6, N_LEVELS)
    filtered = np.stack([_complex_filter(z, float(s), axis=1) for s in levels])
    pos = np.interp(np.log(sig), np.log(levels), np.arange(N_LEVELS, dtype=np.float64))
    lo = np.clip(np.floor(pos).astype(int), 0, N_LEVELS - 2)
    t = (pos - lo)[:, None]
    rows = np.arange(len(r))
    out: NDArray[np.complex128] = (1 - t) * filtered[lo, rows] + t * filtered[lo + 1, rows]
    return out


def render_bmode(echo: FloatArray, spacing_mm: tuple[float, float], acq: Acquisition,
                 rng: np.random.Generator) -> NDArray[np.uint8]:
    """(H, W) echogenicity → (H, W) uint8 B-mode, probe at row 0 / centre column, 0 outside the fan."""
    h, w = echo.shape
    sr, sc = spacing_mm
    depth = (h - 1) * sr
    r, th = _polar_grid(depth, acq)
    rr, tt = np.meshgrid(r, th, indexing="ij")
    rows, cols = rr * np.cos(tt) / sr, (w - 1) / 2.0 + rr * np.sin(tt) / sc
    amp = ndimage.map_coordinates(echo, [rows, cols], order=1, mode="constant", cval=float(np.median(echo)))
    n_r, n_b = amp.shape
    dtheta = float(th[1] - th[0])
    if acq.dropout > 0:  # a wall parallel to the beams: an angular band at mid depth returns little
        centre = rng.choice([-1.0, 1.0]) * rng.uniform(0.15, 0.75) * math.radians(acq.half_angle_deg)
        width = math.radians(rng.uniform(4.0, 14.0))
        r0, r1 = sorted(rng.uniform(0.2, 0.9, size=2) * depth)
        band = np.exp(-(((tt - centre) / width) ** 2)) * ((rr > r0) & (rr < r1 + 20.0))
        amp = amp * (1.0 - acq.dropout * ndimage.gaussian_filter1d(band, 8.0, axis=0))
    if acq.shadow > 0:
        centre = rng.uniform(-0.8, 0.8) * math.radians(acq.half_angle_deg)
        width = math.radians(rng.uniform(2.0, 7.0))
        start = rng.uniform(0.05, 0.4) * depth
        amp = amp * (1.0 - acq.shadow * (np.abs(tt - centre) < width) * (rr > start))
    z = np.asarray((rng.standard_normal((n_r, n_b)) + 1j * rng.standard_normal((n_r, n_b))) * amp, dtype=np.complex128)
    z = _complex_filter(z, acq.pulse_sigma_mm / acq.dr_mm, axis=0)
    z = _lateral_psf(z, r, dtheta, acq)
    env = np.abs(z)
    ref = float(np.percentile(env, 99)) + 1e-12
    # Reverberation clutter: an incoherent haze over the near field (and the apex) with multiples.
    if acq.clutter > 0:
        haze = np.abs(_complex_filter(rng.standard_normal((n_r, n_b)) + 1j * rng.standard_normal((n_r, n_b)),
                                      3.0, axis=1))
        prof = np.exp(-rr / acq.clutter_depth_mm)
        d0 = rng.uniform(6.0, 15.0)
        for k in (1, 2, 3):
            prof = prof + 0.5 / k * np.exp(-(((rr - k * d0) / 2.0) ** 2))
        env = np.hypot(env, acq.clutter * ref * 0.5 * prof * haze)
    env = env + ref * 10.0 ** (acq.noise_db / 20.0) * np.abs(rng.standard_normal((n_r, n_b)))
    tgc_bumps = np.interp(r, np.linspace(0.0, depth, 8), rng.uniform(-3.0, 3.0, size=8))
    residual = -(1.0 - acq.tgc_compensation) * acq.atten_db_per_mm * r + tgc_bumps
    env = env * (10.0 ** (residual / 20.0))[:, None]
    level = 20.0 * np.log10(np.maximum(env, 1e-12) / ref) + acq.gain_db
    grey = np.clip((level + acq.dynamic_range_db) / acq.dynamic_range_db, 0.0, 1.0) ** acq.gamma
    # Scan conversion (bilinear), zero outside the fan.
    pr = np.arange(h, dtype=np.float64)[:, None] * sr
    pc = (np.arange(w, dtype=np.float64)[None, :] - (w - 1) / 2.0) * sc
    radius, angle = np.hypot(pr, pc), np.arctan2(pc, np.maximum(pr, 1e-9))
    ri, ti = radius / acq.dr_mm, (angle - th[0]) / dtheta
    inside = (ti >= 0) & (ti <= n_b - 1) & (radius <= depth)
    img = ndimage.map_coordinates(grey, [ri, ti], order=1, mode="constant", cval=0.0) * inside
    out: NDArray[np.uint8] = np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


def _ecg(n: int, rng: np.random.Generator) -> FloatArray:
    t = np.linspace(0.0, rng.uniform(1.5, 3.5), n)
    ph = (t % 1.0)
    out: FloatArray = (np.exp(-((ph - 0.3) / 0.012) ** 2) - 0.3 * np.exp(-((ph - 0.33) / 0.015) ** 2)
                       + 0.2 * np.exp(-((ph - 0.6) / 0.05) ** 2) + 0.1 * np.exp(-((ph - 0.12) / 0.03) ** 2))
    return out


def burn_in(image: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.uint8]:
    """Screen furniture as on scanner exports: text, an ECG trace, a grey bar and depth ticks."""
    h, w = image.shape
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(0, 6))):
        x, y = int(rng.integers(0, max(w - 40, 1))), int(rng.integers(0, max(h // 5, 1)))
        if rng.uniform() < 0.5:
            y = int(rng.integers(max(h - h // 6, 0), h - 8))
        text = "".join(rng.choice(list("ABCDEFGHKMPRSTV0123456789 .:/%"), size=int(rng.integers(3, 12))))
        draw.text((x, y), text, fill=int(rng.integers(120, 256)))
    if rng.uniform() < 0.5:  # ECG trace along the bottom
        xs = np.arange(w // 8, w - w // 8)
        base = h - int(rng.integers(6, max(h // 8, 7)))
        ys = base - _ecg(len(xs), rng) * rng.uniform(5.0, 15.0)
        draw.line(list(zip(xs.tolist(), ys.tolist(), strict=True)), fill=int(rng.integers(150, 256)), width=1)
    if rng.uniform() < 0.4:  # grey bar
        x0, y0 = int(rng.integers(2, max(w // 10, 3))), int(rng.integers(h // 20, h // 6))
        for k in range(40):
            draw.line([(x0, y0 + k), (x0 + 4, y0 + k)], fill=255 - 6 * k)
    if rng.uniform() < 0.5:  # depth ticks beside the fan
        x = int(w * rng.uniform(0.85, 0.95))
        for y in range(int(h * 0.1), h, max(int(rng.integers(15, 40)), 1)):
            draw.point([(x, y), (x + 1, y)], fill=200)
    return np.asarray(pil, dtype=np.uint8)
