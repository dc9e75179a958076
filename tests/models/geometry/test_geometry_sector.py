"""The apical sector (fan) of a phased-array image: its window in pixel coordinates."""

from __future__ import annotations

import math

import numpy as np

from models.geometry.sector import DEFAULT_HALF_ANGLE_DEG, sector_mask, sector_polar

SPACING = (0.7, 0.7)


def test_sector_window() -> None:
    fan = sector_mask((224, 224), SPACING)
    radius, angle = sector_polar((224, 224), SPACING)
    assert fan[0, 111] == 1 or fan[1, 111] == 1
    assert fan[0, 0] == 0 and fan[5, 0] == 0
    inside = (np.abs(angle) <= math.radians(DEFAULT_HALF_ANGLE_DEG)) & (radius <= 223 * 0.7)
    np.testing.assert_array_equal(fan.astype(bool), inside)
