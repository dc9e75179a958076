"""Biplane and single-plane method of disks against ellipsoid closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.bench.simpson import (
    ejection_fraction_percent,
    measure_disks,
    simpson_biplane_volume_ml,
    simpson_single_plane_volume_ml,
)

A4C_SEMI, A2C_SEMI, LONG_SEMI = 22.0, 18.0, 40.0  # mm: prolate ellipsoid semi-axes a, b, c


def ellipse_mask(
    semi_lateral: float,
    spacing: tuple[float, float],
    *,
    truncated: bool = False,
    tilt_deg: float = 0.0,
    apex_depth_mm: float = 8.0,
) -> np.ndarray:
    """Central slice of the ellipsoid as an apical mask: apex near row 0, long axis downward
    (tilted by ``tilt_deg`` in the image), optionally cut at the equator (a basal plane)."""
    sr, sc = spacing
    h, w = int((apex_depth_mm + 2 * LONG_SEMI + 20) / sr), int(90 / sc)
    r, c = np.mgrid[0:h, 0:w]
    centre_y = apex_depth_mm + LONG_SEMI
    y, x = r * sr - centre_y, c * sc - (w - 1) / 2 * sc
    th = math.radians(tilt_deg)
    xr, yr = math.cos(th) * x + math.sin(th) * y, -math.sin(th) * x + math.cos(th) * y
    inside = (xr / semi_lateral) ** 2 + (yr / LONG_SEMI) ** 2 <= 1.0
    if truncated:
        inside &= yr <= 0.0
    return inside.astype(np.uint8)


@pytest.mark.parametrize("tilt_deg", [0.0, 12.0, -20.0])
@pytest.mark.parametrize("spacing", [(0.5, 0.5), (0.3, 0.45)])
def test_full_ellipsoid_biplane(spacing: tuple[float, float], tilt_deg: float) -> None:
    exact = 4.0 / 3.0 * math.pi * A4C_SEMI * A2C_SEMI * LONG_SEMI / 1000.0
    a4c = ellipse_mask(A4C_SEMI, spacing, tilt_deg=tilt_deg)
    a2c = ellipse_mask(A2C_SEMI, spacing, tilt_deg=tilt_deg)
    assert simpson_biplane_volume_ml(a4c, spacing, a2c, spacing) == pytest.approx(exact, rel=0.02)
    m = measure_disks(a4c, spacing)
    # No mitral cut here: the "annulus" is the flat cap of the pole, up to a pixel diagonal high.
    assert m.length_mm == pytest.approx(2 * LONG_SEMI, abs=1.5)
    assert m.diameters_mm.shape == (20,) and m.diameters_mm.max() == pytest.approx(2 * A4C_SEMI, abs=1.0)


@pytest.mark.parametrize("tilt_deg", [0.0, 12.0, -20.0])
@pytest.mark.parametrize("spacing", [(0.5, 0.5), (0.3, 0.45)])
def test_truncated_ellipsoid_biplane_finds_the_basal_plane(tilt_deg: float, spacing: tuple[float, float]) -> None:
    """Half ellipsoid (apex to equator) like an LV cut at the mitral plane, also tilted in the sector."""
    exact = 2.0 / 3.0 * math.pi * A4C_SEMI * A2C_SEMI * LONG_SEMI / 1000.0
    a4c = ellipse_mask(A4C_SEMI, spacing, truncated=True, tilt_deg=tilt_deg)
    a2c = ellipse_mask(A2C_SEMI, spacing, truncated=True, tilt_deg=tilt_deg)
    assert simpson_biplane_volume_ml(a4c, spacing, a2c, spacing) == pytest.approx(exact, rel=0.02)
    m = measure_disks(a4c, spacing)
    assert m.length_mm == pytest.approx(LONG_SEMI, abs=1.0)
    assert np.linalg.norm(m.annulus_mm[0] - m.annulus_mm[1]) == pytest.approx(2 * A4C_SEMI, abs=1.5)


def test_single_plane_of_a_spheroid() -> None:
    spacing = (0.4, 0.4)
    exact = 4.0 / 3.0 * math.pi * A4C_SEMI**2 * LONG_SEMI / 1000.0
    assert simpson_single_plane_volume_ml(ellipse_mask(A4C_SEMI, spacing), spacing) == pytest.approx(exact, rel=0.02)


def test_speckles_are_ignored() -> None:
    spacing = (0.5, 0.5)
    clean = ellipse_mask(A4C_SEMI, spacing, truncated=True)
    noisy = clean.copy()
    noisy[-3:, :3] = 1  # a detached blob far below the base
    assert simpson_single_plane_volume_ml(noisy, spacing) == simpson_single_plane_volume_ml(clean, spacing)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        simpson_single_plane_volume_ml(np.zeros((20, 20), dtype=np.uint8), (0.5, 0.5))
    with pytest.raises(ValueError, match="spacing"):
        measure_disks(ellipse_mask(A4C_SEMI, (0.5, 0.5)), (0.0, 0.5))


def test_ejection_fraction() -> None:
    assert ejection_fraction_percent(120.0, 48.0) == pytest.approx(60.0)
    assert math.isnan(ejection_fraction_percent(0.0, 0.0))
