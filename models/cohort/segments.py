"""The AHA 17-segment model mapped onto the cohort's material coordinates (s, φ).

``s`` in [0, 1] is the normalised axial position of a wall point at end-diastole (0 at the
apex, 1 at the mitral annulus) and ``φ`` its angle about +z in the canonical frame
(``models.geometry.frames``: +x lateral in A4C, A2C at −60°, A3C at −120°).

Levels (fractions of the long axis from the apex): apex cap (segment 17) s < 0.10, apical
0.10–0.35, mid 0.35–0.65, basal 0.65–1.

Angular centres follow the imaging planes: A4C (0°/180°) shows the anterolateral (+x) and
inferoseptal (−x) walls, A2C (−60°/120°) the anterior and inferior walls, A3C
(−120°/60°) the anteroseptal and inferolateral walls (the LVOT/aortic valve side is −120°).

===========  ======================  ==========
segments     wall                    centre φ
===========  ======================  ==========
1, 7         anterior                −60°
2, 8         anteroseptal            −120°
3, 9         inferoseptal            180°
4, 10        inferior                120°
5, 11        inferolateral           60°
6, 12        anterolateral           0°
13           apical anterior         −60°
14           apical septal           −150°
15           apical inferior         120°
16           apical lateral          30°
17           apex                    (cap)
===========  ======================  ==========
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

N_SEGMENTS: Final[int] = 17
LEVEL_EDGES: Final[tuple[float, float, float]] = (0.10, 0.35, 0.65)
"""Boundaries in s between apex cap | apical | mid | basal."""

_RING6_DEG: Final[tuple[float, ...]] = (-60.0, -120.0, 180.0, 120.0, 60.0, 0.0)
_APICAL4_DEG: Final[tuple[float, ...]] = (-60.0, -150.0, 120.0, 30.0)

SEGMENT_NAMES: Final[tuple[str, ...]] = (
    "basal anterior",
    "basal anteroseptal",
    "basal inferoseptal",
    "basal inferior",
    "basal inferolateral",
    "basal anterolateral",
    "mid anterior",
    "mid anteroseptal",
    "mid inferoseptal",
    "mid inferior",
    "mid inferolateral",
    "mid anterolateral",
    "apical anterior",
    "apical septal",
    "apical inferior",
    "apical lateral",
    "apex",
)

CORONARY_TERRITORIES: Final[dict[str, tuple[int, ...]]] = {
    "LAD": (1, 2, 7, 8, 13, 14, 17),
    "RCA": (3, 4, 9, 10, 15),
    "LCX": (5, 6, 11, 12, 16),
}
"""Typical coronary perfusion territories (segment numbers, 1-based)."""


def segment_centres() -> list[tuple[float, float, float, float]]:
    """Per segment (1..17, as list index 0..16): (s_lo, s_hi, centre_deg, half_width_deg)."""
    a, m, b = LEVEL_EDGES
    out: list[tuple[float, float, float, float]] = []
    out += [(b, 2.0, c, 30.0) for c in _RING6_DEG]  # open-ended beyond the annulus
    out += [(m, b, c, 30.0) for c in _RING6_DEG]
    out += [(a, m, c, 45.0) for c in _APICAL4_DEG]
    out.append((-1.0, a, 0.0, 180.0))  # open-ended below the apex
    return out


def _angle_diff_deg(phi_rad: FloatArray, centre_deg: float) -> FloatArray:
    d = np.degrees(phi_rad) - centre_deg
    return np.abs((d + 180.0) % 360.0 - 180.0)


def segment_of(s: FloatArray, phi: FloatArray) -> NDArray[np.int64]:
    """Hard AHA segment number (1..17) of points with axial ``s`` and angle ``phi`` (rad), any shape."""
    s_arr = np.asarray(s, dtype=np.float64)
    phi_arr = np.asarray(phi, dtype=np.float64)
    s_b, phi_b = np.broadcast_arrays(s_arr, phi_arr)
    out = np.full(s_b.shape, N_SEGMENTS, dtype=np.int64)
    for k, (lo, hi, centre, half) in enumerate(segment_centres()[:16]):
        inside = (s_b >= lo) & (s_b < hi) & (_angle_diff_deg(phi_b, centre) <= half)
        out[inside] = k + 1
    return out


def _sigmoid(x: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


def regional_field(
    values: FloatArray, s: FloatArray, phi: FloatArray, softness: float = 0.05, softness_deg: float = 10.0
) -> FloatArray:
    """Smooth interpolation of per-segment ``values`` (17,) at points (s, φ), any broadcast shape.

    Segment memberships are products of logistic windows in s (scale ``softness``) and in φ
    (scale ``softness_deg``), normalised to sum to one, so the field is smooth across
    segment borders and equals a segment's value well inside it.
    """
    v = np.asarray(values, dtype=np.float64).reshape(N_SEGMENTS)
    s_b, phi_b = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(phi, dtype=np.float64))
    table = np.asarray(segment_centres())  # (17, 4): s_lo, s_hi, centre_deg, half_deg
    expand = (slice(None),) + (None,) * s_b.ndim
    lo, hi, centre, half = (table[:, i][expand] for i in range(4))
    m = _sigmoid((s_b[None] - lo) / softness) * _sigmoid((hi - s_b[None]) / softness)
    d = np.degrees(phi_b)[None] - centre
    ang = np.abs((d + 180.0) % 360.0 - 180.0)
    window = _sigmoid((half - ang) / softness_deg)
    window[-1] = 1.0  # the apex cap has no angular extent
    m = m * window
    out: FloatArray = np.tensordot(v, m, axes=1) / np.maximum(m.sum(axis=0), 1e-12)
    return out
