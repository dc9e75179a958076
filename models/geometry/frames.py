"""The canonical LV frame, the three apical imaging planes and probe poses.

Canonical LV frame (used everywhere in Echo4D; see docs/geometry.md):

* units are millimetres;
* the origin is the endocardial apex;
* +z runs along the long axis, from the apex to the centre of the mitral annulus;
* +x points toward the lateral wall as seen in the apical four-chamber (A4C) view, so the
  A4C plane is the x–z plane; +y = z × x completes a right-handed frame (toward the
  anterior wall / the right ventricle side is -x, septum).

The apical views are rotations of the A4C plane about +z. Seen from the apex (looking
along +z) the sonographer turns the probe counter-clockwise from A4C to A2C (about 60°)
and on to A3C (about 120°); with +z pointing from apex to base that is a *negative*
angle about +z: A4C 0°, A2C −60°, A3C −120°.

Image frame of a view: row 0 is at the probe (the apex end), rows increase toward the
base; columns increase toward the lateral wall in A4C (screen left = septum). A pixel
(row r, column c) with spacing (sr, sc) mm has in-plane coordinates
``p = (c · sc, r · sr, 0)`` mm and maps to the canonical frame by the probe pose
``x = s · R · p + t`` (R a rotation, t a translation in mm, s an isotropic scale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

VIEW_NAMES: Final[tuple[str, ...]] = ("A4C", "A2C", "A3C")
"""The apical views Echo4D understands, in the fixed order used for tensors (V axis)."""

VIEW_ANGLES_DEG: Final[dict[str, float]] = {"A4C": 0.0, "A2C": -60.0, "A3C": -120.0}
"""Nominal rotation of each imaging plane about +z, in degrees."""

DEFAULT_IMAGE_SHAPE: Final[tuple[int, int]] = (224, 224)
DEFAULT_PIXEL_SPACING_MM: Final[tuple[float, float]] = (0.7, 0.7)
DEFAULT_APEX_DEPTH_MM: Final[float] = 20.0
"""Nominal depth of the endocardial apex below the transducer (chest wall + myocardium)."""


def rotation_z(angle_rad: float) -> FloatArray:
    """Rotation matrix (3, 3) about +z by ``angle_rad`` (right-handed)."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_from_axis_angle(axis: FloatArray, angle_rad: float) -> FloatArray:
    """Rodrigues rotation (3, 3) about a unit ``axis`` (3,)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    out: FloatArray = np.eye(3) + math.sin(angle_rad) * k + (1.0 - math.cos(angle_rad)) * (k @ k)
    return out


def plane_axes(view_angle_deg: float) -> FloatArray:
    """Rotation (3, 3) whose columns are the plane's lateral axis, depth axis and normal.

    Column 0 (image columns, lateral) is R_z(θ)·x̂, column 1 (image rows, depth) is +z and
    column 2 is their cross product, so the matrix is a proper rotation.
    """
    lateral = rotation_z(math.radians(view_angle_deg)) @ np.array([1.0, 0.0, 0.0])
    depth = np.array([0.0, 0.0, 1.0])
    normal = np.cross(lateral, depth)
    return np.stack([lateral, depth, normal], axis=1)


@dataclass(frozen=True)
class ProbePose:
    """Probe pose T = {R, t, s}: in-plane point p (mm) → canonical point ``s·R·p + t``."""

    rotation: FloatArray  # (3, 3)
    translation: FloatArray  # (3,) mm: where the image origin (pixel 0, 0) lies
    scale: float = 1.0

    def __post_init__(self) -> None:
        r = np.asarray(self.rotation, dtype=np.float64)
        if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-6) or np.linalg.det(r) < 0:
            raise ValueError("ProbePose.rotation must be a proper 3x3 rotation matrix")
        t = np.asarray(self.translation, dtype=np.float64).reshape(3)
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError("ProbePose.scale must be a positive finite number")
        object.__setattr__(self, "rotation", r)
        object.__setattr__(self, "translation", t)

    @property
    def normal(self) -> FloatArray:
        """Unit normal (3,) of the imaging plane."""
        return self.rotation[:, 2].copy()

    def plane_to_world(self, p: FloatArray) -> FloatArray:
        """Map in-plane points (..., 2) or (..., 3) mm to canonical points (..., 3)."""
        p = np.asarray(p, dtype=np.float64)
        if p.shape[-1] == 2:
            p = np.concatenate([p, np.zeros((*p.shape[:-1], 1))], axis=-1)
        out: FloatArray = self.scale * p @ self.rotation.T + self.translation
        return out

    def world_to_plane(self, x: FloatArray) -> FloatArray:
        """Inverse map: canonical points (..., 3) → in-plane coordinates (..., 3); [..., 2] is
        the signed out-of-plane distance divided by the scale."""
        x = np.asarray(x, dtype=np.float64)
        out: FloatArray = ((x - self.translation) @ self.rotation) / self.scale
        return out

    def to_dict(self) -> dict[str, list[float] | list[list[float]] | float]:
        return {
            "rotation": self.rotation.tolist(),
            "translation_mm": self.translation.tolist(),
            "scale": float(self.scale),
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> ProbePose:
        return cls(
            rotation=np.asarray(d["rotation"], dtype=np.float64),
            translation=np.asarray(d["translation_mm"], dtype=np.float64),
            scale=float(d.get("scale", 1.0)),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class ImagePlane:
    """An imaging plane with its pixel grid: shape (H, W), spacing (row, col) mm and pose."""

    shape: tuple[int, int]
    spacing_mm: tuple[float, float]
    pose: ProbePose

    def pixel_to_plane(self, rows: FloatArray, cols: FloatArray) -> FloatArray:
        """Pixel indices (N,) rows, (N,) cols → in-plane mm coordinates (N, 2) as (lateral, depth)."""
        sr, sc = self.spacing_mm
        return np.stack([np.asarray(cols, dtype=np.float64) * sc, np.asarray(rows, dtype=np.float64) * sr], -1)

    def pixel_to_world(self, rows: FloatArray, cols: FloatArray) -> FloatArray:
        """Pixel indices → canonical points (N, 3) mm, x = s·R·p + t."""
        return self.pose.plane_to_world(self.pixel_to_plane(rows, cols))

    def grid_points(self) -> FloatArray:
        """Canonical points (H, W, 3) of every pixel centre."""
        h, w = self.shape
        rr, cc = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
        return self.pixel_to_world(rr.ravel(), cc.ravel()).reshape(h, w, 3)


def nominal_pose(
    view: str,
    image_shape: tuple[int, int] = DEFAULT_IMAGE_SHAPE,
    spacing_mm: tuple[float, float] = DEFAULT_PIXEL_SPACING_MM,
    apex_depth_mm: float = DEFAULT_APEX_DEPTH_MM,
) -> ProbePose:
    """The textbook pose of an apical view: the probe sits on the long axis, ``apex_depth_mm``
    above the apex, the sector's centre column on the long axis and the plane rotated by
    the view's nominal angle about +z."""
    if view not in VIEW_ANGLES_DEG:
        raise ValueError(f"unknown view {view!r}; expected one of {', '.join(VIEW_NAMES)}")
    r = plane_axes(VIEW_ANGLES_DEG[view])
    centre_col_mm = (image_shape[1] - 1) / 2.0 * spacing_mm[1]
    probe = np.array([0.0, 0.0, -apex_depth_mm])
    t = probe - centre_col_mm * r[:, 0]
    return ProbePose(rotation=r, translation=t, scale=1.0)


def nominal_plane(
    view: str,
    image_shape: tuple[int, int] = DEFAULT_IMAGE_SHAPE,
    spacing_mm: tuple[float, float] = DEFAULT_PIXEL_SPACING_MM,
    apex_depth_mm: float = DEFAULT_APEX_DEPTH_MM,
) -> ImagePlane:
    """The :class:`ImagePlane` of ``view`` at its nominal pose."""
    return ImagePlane(image_shape, spacing_mm, nominal_pose(view, image_shape, spacing_mm, apex_depth_mm))
