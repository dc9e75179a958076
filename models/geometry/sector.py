"""The apical sector (fan) of a phased-array echo image, in pixel coordinates.

The fan's apex is the transducer: image row 0, centre column ``(W − 1) / 2`` (as in
``models.geometry.frames.nominal_pose``). A pixel centre is inside the fan when its angle to
the depth axis is at most ``half_angle_deg`` and its distance to the apex (mm) is at most
``max_depth_mm`` (default: the image depth).
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

DEFAULT_HALF_ANGLE_DEG: Final[float] = 40.0
"""Half opening angle of the sector (an 80° phased-array sector)."""


def sector_polar(
    shape: tuple[int, int], spacing_mm: tuple[float, float]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per-pixel (H, W) distance to the transducer (mm) and angle to the depth axis (rad)."""
    h, w = shape
    sr, sc = spacing_mm
    rows = np.arange(h, dtype=np.float64)[:, None] * sr
    cols = (np.arange(w, dtype=np.float64)[None, :] - (w - 1) / 2.0) * sc
    radius = np.hypot(rows, cols)
    angle = np.arctan2(cols, np.maximum(rows, 1e-9))
    return radius, angle


def sector_mask(
    shape: tuple[int, int],
    spacing_mm: tuple[float, float],
    half_angle_deg: float = DEFAULT_HALF_ANGLE_DEG,
    max_depth_mm: float | None = None,
) -> NDArray[np.uint8]:
    """(H, W) uint8: 1 inside the apical fan, 0 outside."""
    radius, angle = sector_polar(shape, spacing_mm)
    depth = (shape[0] - 1) * spacing_mm[0] if max_depth_mm is None else max_depth_mm
    inside = (np.abs(angle) <= np.radians(half_angle_deg)) & (radius <= depth)
    out: NDArray[np.uint8] = inside.astype(np.uint8)
    return out
