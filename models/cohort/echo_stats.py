"""Image statistics that compare synthetic B-mode with real cines (for calibrating the simulator).

All on one frame (H, W) uint8 with a (rough) LV cavity mask and the pixel spacing:

* intensities normalised like the network's input (divided by the 99th percentile of the
  non-zero pixels): the median inside the cavity, in a 3–10 mm ring around it (the wall), and
  over the whole fan, and the fraction of the fan darker than 0.1;
* speckle size: full width at half maximum (mm) of the autocorrelation of the high-passed
  image along the beam (rows) and across it (columns), in the central part of the fan;
* sector geometry: the fan's half-opening angle (degrees, from the non-zero footprint's
  widest row) and depth (mm).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage


def _fwhm_mm(profile: NDArray[np.float64], spacing: float) -> float:
    """Width at half maximum of a symmetric autocorrelation profile centred at index 0 (mm)."""
    below = np.flatnonzero(profile < 0.5)
    if below.size == 0:
        return float("nan")
    k = int(below[0])
    frac = (profile[k - 1] - 0.5) / max(profile[k - 1] - profile[k], 1e-9)
    return float(2.0 * (k - 1 + frac) * spacing)


def speckle_fwhm_mm(frame: NDArray[np.uint8], spacing_mm: tuple[float, float]) -> tuple[float, float]:
    """(axial, lateral) speckle FWHM (mm) in the central fan (rows 25–75 %, middle third of columns)."""
    h, w = frame.shape
    win = frame[h // 4 : 3 * h // 4, w // 3 : 2 * w // 3].astype(np.float64)
    hp = win - ndimage.gaussian_filter(win, 8.0)
    f = np.fft.rfft2(hp - hp.mean(), s=(2 * hp.shape[0], 2 * hp.shape[1]))
    ac = np.fft.irfft2(np.abs(f) ** 2)
    ac = ac / max(float(ac[0, 0]), 1e-12)
    return _fwhm_mm(ac[:20, 0], spacing_mm[0]), _fwhm_mm(ac[0, :20], spacing_mm[1])


def fan_geometry(frame: NDArray[np.uint8], spacing_mm: tuple[float, float]) -> tuple[float, float]:
    """(half-opening angle in degrees, depth in mm) of the non-zero fan."""
    nz = frame > 0
    rows = np.flatnonzero(nz.any(axis=1))
    if rows.size < 2:
        return float("nan"), float("nan")
    top, bottom = int(rows[0]), int(rows[-1])
    widths = nz.sum(axis=1)
    r = int(np.argmax(widths))
    cols = np.flatnonzero(nz[r])
    half_w = 0.5 * (cols[-1] - cols[0]) * spacing_mm[1]
    return math.degrees(math.atan2(half_w, (r - top) * spacing_mm[0])), (bottom - top) * spacing_mm[0]


def image_stats(frame: NDArray[np.uint8], cavity: NDArray[np.bool_], spacing_mm: tuple[float, float]
                ) -> dict[str, Any]:
    """The statistics above for one frame (H, W) and its cavity (H, W) bool."""
    nz = frame > 0
    top = float(np.percentile(frame[nz], 99)) if nz.sum() >= 100 else 255.0
    x = frame.astype(np.float64) / max(top, 1.0)
    d = ndimage.distance_transform_edt(~cavity, sampling=spacing_mm)
    ring = (d >= 3.0) & (d <= 10.0) & nz
    ax, lat = speckle_fwhm_mm(frame, spacing_mm)
    half, depth = fan_geometry(frame, spacing_mm)
    return {
        "cavity_median": float(np.median(x[cavity & nz])) if (cavity & nz).any() else float("nan"),
        "wall_ring_median": float(np.median(x[ring])) if ring.any() else float("nan"),
        "fan_median": float(np.median(x[nz])),
        "fan_dark_fraction": float((x[nz] < 0.1).mean()),
        "speckle_axial_mm": ax, "speckle_lateral_mm": lat,
        "half_angle_deg": half, "depth_mm": depth,
    }


def synthetic_frames(n: int, seed: int, simulator: str = "physics", shape: tuple[int, int] = (240, 320)
                     ) -> list[tuple[NDArray[np.uint8], NDArray[np.bool_], tuple[float, float]]]:
    """``n`` synthetic (frame, LV cavity, spacing) at native resolution (an A4C, A2C, A3C rotation of
    training-range subjects from seed ``seed``), from the ``physics`` or ``classic`` simulator."""
    from models.cohort.bmode import synthesize_bmode
    from models.cohort.echo_physics import render_bmode, sample_acquisition
    from models.cohort.echo_scene import echogenicity_map
    from models.cohort.simulator import sample_perturbation, simulate_view
    from models.cohort.subject import generate_subject

    rng = np.random.default_rng(seed)
    out: list[tuple[NDArray[np.uint8], NDArray[np.bool_], tuple[float, float]]] = []
    k = 0
    while len(out) < n:
        subject = generate_subject(seed + k)
        view = ("A4C", "A2C", "A3C")[k % 3]
        k += 1
        sp = float(rng.uniform(140.0, 220.0)) / shape[0]
        pert = sample_perturbation(rng, 1.0, subject.shape.length_mm)
        mask, _ = simulate_view(subject.cycle(8).mesh(int(rng.integers(8))), view, pert, shape, (sp, sp))
        if mask.sum() < 40:
            continue
        if simulator == "physics":
            image = render_bmode(echogenicity_map(mask, (sp, sp), rng, view), (sp, sp), sample_acquisition(rng), rng)
        else:
            image = synthesize_bmode(mask, rng, (sp, sp))
        out.append((image, mask.astype(bool), (sp, sp)))
    return out
