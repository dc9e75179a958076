"""Apical echo view simulator: perturbed probe poses, exact mesh slicing, sector window.

A view's plane starts at its nominal pose (``models.geometry.frames.nominal_pose``: probe on
the long axis 20 mm above the apex, plane rotated by the view angle about +z) and is then
moved by a :class:`ProbePerturbation`, applied in this order:

1. **rotation** about the long axis (z) by ``rotation_deg`` (added to the view angle);
2. **apical foreshortening**: a rotation of the plane about its own lateral axis through the
   point ``(0, 0, foreshortening_pivot_mm)`` (the mitral level) so that the true apex lies
   ``foreshortening_mm`` out of the plane, i.e. the probe sits too basal / displaced and the
   plane cuts the wall short of the real apex (the cavity looks shorter);
3. **tilt** by ``tilt_deg`` about the horizontal axis at azimuth ``tilt_azimuth_deg``, pivoting
   at ``(0, 0, pivot_mm)`` (mid-cavity);
4. **offsets** in the moved plane's frame: ``inplane_mm`` (lateral), ``depth_mm`` (along the
   beam) and ``outplane_mm`` (along the normal: an off-centre chord).

The resulting :class:`~models.geometry.frames.ImagePlane` is the ground-truth pose of the view.
Masks are exact polygon fills (``models.geometry.slicing.slice_mask``) multiplied by the
apical sector (``sector.py``): anything outside the fan is 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from models.geometry.frames import (
    DEFAULT_APEX_DEPTH_MM,
    DEFAULT_IMAGE_SHAPE,
    DEFAULT_PIXEL_SPACING_MM,
    VIEW_ANGLES_DEG,
    VIEW_NAMES,
    ImagePlane,
    ProbePose,
    nominal_pose,
    rotation_from_axis_angle,
    rotation_z,
)
from models.geometry.mesh import Mesh
from models.geometry.sector import DEFAULT_HALF_ANGLE_DEG, sector_mask
from models.geometry.slicing import slice_mask

FloatArray = NDArray[np.float64]

MAX_TILT_DEG = 10.0
MAX_ROTATION_DEG = 15.0


@dataclass(frozen=True)
class ProbePerturbation:
    """Deviation of a probe from its nominal apical pose (angles in degrees, lengths in mm)."""

    tilt_deg: float = 0.0
    tilt_azimuth_deg: float = 0.0
    rotation_deg: float = 0.0
    inplane_mm: float = 0.0
    outplane_mm: float = 0.0
    depth_mm: float = 0.0
    foreshortening_mm: float = 0.0
    pivot_mm: float = 45.0
    foreshortening_pivot_mm: float = 90.0

    def __post_init__(self) -> None:
        values = asdict(self).values()
        if not all(math.isfinite(v) for v in values):
            raise ValueError("ProbePerturbation values must be finite")
        if self.foreshortening_pivot_mm <= abs(self.foreshortening_mm):
            raise ValueError("foreshortening_pivot_mm must exceed |foreshortening_mm|")

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


NOMINAL = ProbePerturbation()


def sample_perturbation(
    rng: np.random.Generator, strength: float = 1.0, lv_length_mm: float = 90.0
) -> ProbePerturbation:
    """A random perturbation; ``strength`` ∈ [0, 1] scales every deviation (0 = nominal).

    At strength 1: tilt uniform 0–10° in a random direction, rotation uniform ±15°, in-plane
    offset N(0, 4) mm, depth offset N(0, 5) mm, out-of-plane N(0, 2.5) mm (clipped to ±6), and
    with probability 0.3 apical foreshortening of 4–15 mm. Pivots follow ``lv_length_mm``
    (mid-cavity and mitral level). Always draws the same count of numbers.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError("strength must be within [0, 1]")
    u = rng.uniform(0.0, 1.0, size=5)
    n = rng.standard_normal(3)
    fs = (4.0 + 11.0 * u[4]) * strength if u[3] < 0.3 else 0.0
    return ProbePerturbation(
        tilt_deg=MAX_TILT_DEG * strength * float(u[0]),
        tilt_azimuth_deg=360.0 * float(u[1]),
        rotation_deg=MAX_ROTATION_DEG * strength * (2.0 * float(u[2]) - 1.0),
        inplane_mm=4.0 * strength * float(n[0]),
        outplane_mm=float(np.clip(2.5 * strength * n[1], -6.0, 6.0)),
        depth_mm=5.0 * strength * float(n[2]),
        foreshortening_mm=float(fs),
        pivot_mm=0.5 * lv_length_mm,
        foreshortening_pivot_mm=lv_length_mm,
    )


def _about(pose: ProbePose, rot: FloatArray, pivot: FloatArray) -> ProbePose:
    """Apply the rigid motion x ↦ rot (x − pivot) + pivot to a pose."""
    return ProbePose(rot @ pose.rotation, rot @ (pose.translation - pivot) + pivot, pose.scale)


def perturbed_pose(
    view: str,
    perturbation: ProbePerturbation = NOMINAL,
    image_shape: tuple[int, int] = DEFAULT_IMAGE_SHAPE,
    spacing_mm: tuple[float, float] = DEFAULT_PIXEL_SPACING_MM,
    apex_depth_mm: float = DEFAULT_APEX_DEPTH_MM,
) -> ProbePose:
    """The true probe pose of ``view`` under ``perturbation`` (nominal pose when unperturbed)."""
    if view not in VIEW_ANGLES_DEG:
        raise ValueError(f"unknown view {view!r}; expected one of {', '.join(VIEW_NAMES)}")
    p = perturbation
    pose = nominal_pose(view, image_shape, spacing_mm, apex_depth_mm)
    origin = np.zeros(3)
    if p.rotation_deg:
        pose = _about(pose, rotation_z(math.radians(p.rotation_deg)), origin)
    if p.foreshortening_mm:
        angle = math.asin(p.foreshortening_mm / p.foreshortening_pivot_mm)
        lateral = pose.rotation[:, 0]
        pose = _about(pose, rotation_from_axis_angle(lateral, angle), np.array([0.0, 0.0, p.foreshortening_pivot_mm]))
    if p.tilt_deg:
        az = math.radians(p.tilt_azimuth_deg)
        axis = np.array([math.cos(az), math.sin(az), 0.0])
        pose = _about(pose, rotation_from_axis_angle(axis, math.radians(p.tilt_deg)), np.array([0.0, 0.0, p.pivot_mm]))
    shift = pose.rotation @ np.array([p.inplane_mm, p.depth_mm, p.outplane_mm])
    return ProbePose(pose.rotation, pose.translation + shift, pose.scale)


def perturbed_plane(
    view: str,
    perturbation: ProbePerturbation = NOMINAL,
    image_shape: tuple[int, int] = DEFAULT_IMAGE_SHAPE,
    spacing_mm: tuple[float, float] = DEFAULT_PIXEL_SPACING_MM,
) -> ImagePlane:
    """The true :class:`ImagePlane` of ``view`` under ``perturbation``."""
    return ImagePlane(image_shape, spacing_mm, perturbed_pose(view, perturbation, image_shape, spacing_mm))


def simulate_view(
    mesh: Mesh,
    view: str,
    perturbation: ProbePerturbation = NOMINAL,
    image_shape: tuple[int, int] = DEFAULT_IMAGE_SHAPE,
    spacing_mm: tuple[float, float] = DEFAULT_PIXEL_SPACING_MM,
    half_angle_deg: float = DEFAULT_HALF_ANGLE_DEG,
) -> tuple[NDArray[np.uint8], ImagePlane]:
    """Clean LV mask (H, W) uint8 {0, 1} of ``mesh`` in ``view`` and the true plane (its pose).

    The mask is the exact cross-section restricted to the apical sector.
    """
    plane = perturbed_plane(view, perturbation, image_shape, spacing_mm)
    return mask_in_plane(mesh, plane, half_angle_deg), plane


def mask_in_plane(mesh: Mesh, plane: ImagePlane, half_angle_deg: float = DEFAULT_HALF_ANGLE_DEG) -> NDArray[np.uint8]:
    """Exact cross-section of ``mesh`` in ``plane`` (H, W) uint8, zero outside the sector."""
    fan = sector_mask(plane.shape, plane.spacing_mm, half_angle_deg)
    out: NDArray[np.uint8] = slice_mask(mesh, plane) * fan
    return out


def simulate_sequence(
    vertices: FloatArray,
    faces: NDArray[np.int64],
    view: str,
    perturbation: ProbePerturbation = NOMINAL,
    image_shape: tuple[int, int] = DEFAULT_IMAGE_SHAPE,
    spacing_mm: tuple[float, float] = DEFAULT_PIXEL_SPACING_MM,
    half_angle_deg: float = DEFAULT_HALF_ANGLE_DEG,
) -> tuple[NDArray[np.uint8], ImagePlane]:
    """Mask cine (T, H, W) of a mesh sequence ``vertices`` (T, N, 3) under one fixed probe pose."""
    plane = perturbed_plane(view, perturbation, image_shape, spacing_mm)
    fan = sector_mask(image_shape, spacing_mm, half_angle_deg)
    masks = np.stack([slice_mask(Mesh(v, faces), plane) * fan for v in vertices]).astype(np.uint8)
    return masks, plane
