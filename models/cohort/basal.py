"""Basal-shape metrics of an LV cavity in the canonical frame (realism checks, not fitting).

All metrics take a closed cavity mesh in the canonical frame (apex at the origin, mitral
centre on +z at ``length_mm``) and cut it with short-axis planes ``z = h``:

* **radius profile**: the area-equivalent radius ``sqrt(A / π)`` of the cross-section at
  ``z / L`` = the given fractions, divided by the equivalent radius ``D_eq / 2`` of the
  prolate ellipsoid with the cavity's volume and length (``realism``), so it is size-free;
* **eccentricity** of a cross-section: ``1 − b / a`` with ``a ≥ b`` the semi-axes of the
  ellipse with the same second area moments, and the azimuth (deg, in [−90, 90)) of its
  **minor** axis;
* **above the mitral centre**: how far (mm) the cavity reaches above ``z = L`` and at which
  azimuth (the LVOT / aortic side of a real ventricle), and the volume (mL) above ``z = L``.

The cohort side and the real biv-me case go through the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from models.geometry.frames import ProbePose
from models.geometry.mesh import Mesh, mesh_volume_ml
from models.geometry.slicing import slice_polygons

FloatArray = NDArray[np.float64]

PROFILE_FRACTIONS: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 0.9, 0.95)
"""Heights z / L where the radius profile is taken."""


def _loop_moments(loop: FloatArray) -> tuple[float, FloatArray, FloatArray]:
    """Signed area, centroid (2,) and second central moments (2, 2) of a closed polygon."""
    x, y = loop[:, 0], loop[:, 1]
    xn, yn = np.roll(x, -1), np.roll(y, -1)
    cross = x * yn - xn * y
    area = 0.5 * float(cross.sum())
    if abs(area) < 1e-12:
        return 0.0, np.zeros(2), np.zeros((2, 2))
    cx = float(((x + xn) * cross).sum()) / (6.0 * area)
    cy = float(((y + yn) * cross).sum()) / (6.0 * area)
    ixx = float(((x * x + x * xn + xn * xn) * cross).sum()) / 12.0
    iyy = float(((y * y + y * yn + yn * yn) * cross).sum()) / 12.0
    ixy = float(((x * yn + 2 * x * y + 2 * xn * yn + xn * y) * cross).sum()) / 24.0
    m = np.array([[ixx, ixy], [ixy, iyy]]) - area * np.outer([cx, cy], [cx, cy])
    return area, np.array([cx, cy]), m


@dataclass(frozen=True)
class Section:
    """One short-axis cross-section: area (mm²), equivalent radius (mm), eccentricity 1 − b/a,
    azimuth of the minor axis (deg), centroid (x, y) mm."""

    area_mm2: float
    radius_mm: float
    eccentricity: float
    minor_axis_deg: float
    centroid: tuple[float, float]


def section(mesh: Mesh, z_mm: float) -> Section | None:
    """The cross-section of ``mesh`` with the plane ``z = z_mm`` (all loops together); None if empty."""
    loops = slice_polygons(mesh, ProbePose(np.eye(3), np.array([0.0, 0.0, z_mm])))
    if not loops:
        return None
    total_a, first, second = 0.0, np.zeros(2), np.zeros((2, 2))
    parts = []
    for loop in loops:
        a, c, m = _loop_moments(loop)
        a_abs = abs(a)
        parts.append((a_abs, c, m * np.sign(a) if a != 0 else m))
        total_a += a_abs
        first += a_abs * c
    if total_a <= 0:
        return None
    centroid = first / total_a
    for a_abs, c, m in parts:  # parallel-axis theorem to the common centroid
        d = c - centroid
        second += m + a_abs * np.outer(d, d)
    evals, evecs = np.linalg.eigh(second)
    lo, hi = max(float(evals[0]), 0.0), max(float(evals[1]), 1e-12)
    minor = evecs[:, 0]
    ang = math.degrees(math.atan2(minor[1], minor[0]))
    ang = (ang + 90.0) % 180.0 - 90.0
    return Section(total_a, math.sqrt(total_a / math.pi), 1.0 - math.sqrt(lo / hi), ang,
                   (float(centroid[0]), float(centroid[1])))


@dataclass(frozen=True)
class BasalMetrics:
    """Size-free basal shape figures of one cavity (see the module docstring)."""

    radius_profile: tuple[float, ...]  # at PROFILE_FRACTIONS, / (D_eq / 2)
    eccentricity_80: float
    minor_axis_80_deg: float
    eccentricity_90: float
    minor_axis_90_deg: float
    above_mitral_mm: float  # max z − L
    above_mitral_azimuth_deg: float
    above_mitral_ml: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def volume_above(mesh: Mesh, z_mm: float) -> float:
    """Cavity volume (mL) above the plane ``z = z_mm`` (the mesh clipped and capped, by slices)."""
    top = float(mesh.vertices[:, 2].max())
    if top <= z_mm:
        return 0.0
    hs = np.linspace(z_mm, top, 41)
    areas = []
    for h in hs:
        s = section(mesh, float(h)) if h < top else None
        areas.append(s.area_mm2 if s is not None else 0.0)
    return float(np.trapezoid(areas, hs)) / 1000.0


def basal_metrics(mesh: Mesh, length_mm: float, fractions: Sequence[float] = PROFILE_FRACTIONS) -> BasalMetrics:
    """:class:`BasalMetrics` of a canonical-frame cavity with long-axis length ``length_mm``."""
    edv = mesh_volume_ml(mesh)
    r_eq = 0.5 * math.sqrt(6.0 * edv * 1000.0 / (math.pi * length_mm))
    prof = []
    for f in fractions:
        s = section(mesh, f * length_mm)
        prof.append(s.radius_mm / r_eq if s is not None else 0.0)
    s80 = section(mesh, 0.8 * length_mm)
    s90 = section(mesh, 0.9 * length_mm)
    v = mesh.vertices
    top = int(np.argmax(v[:, 2]))
    return BasalMetrics(
        radius_profile=tuple(prof),
        eccentricity_80=s80.eccentricity if s80 else float("nan"),
        minor_axis_80_deg=s80.minor_axis_deg if s80 else float("nan"),
        eccentricity_90=s90.eccentricity if s90 else float("nan"),
        minor_axis_90_deg=s90.minor_axis_deg if s90 else float("nan"),
        above_mitral_mm=float(v[top, 2] - length_mm),
        above_mitral_azimuth_deg=math.degrees(math.atan2(v[top, 1], v[top, 0])),
        above_mitral_ml=volume_above(mesh, length_mm),
    )
