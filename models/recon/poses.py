"""Initial probe poses for test-time optimisation, estimated from each view's ED mask.

Three initialisations (``ReconConfig.pose_init``):

* ``"base"`` (default) — the view's *base* is trusted, not its apex: the long axis of the
  mask runs from its apex to the midpoint of its base; the base midpoint (the mitral level)
  is placed on the canonical long axis at the length ``L`` of the *longest* view, and the
  axis is mapped onto +z in the view's nominal plane. A foreshortened view (the plane tilted
  about its lateral axis through the base, so that it misses the true apex) then keeps its
  base in place and shows a cavity shorter than ``L``; its tilt is left to the probe fit,
  which starts from several candidate tilts (:func:`foreshortening_guess_rad`).
* ``"mask"`` — as ``base`` but the mask's apex is put at the true apex (the origin): exact
  for an unforeshortened view, wrong by the foreshortening for every other view.
* ``"nominal"`` — :func:`models.geometry.frames.nominal_pose`.

Every view's base midpoint mapped to the canonical frame is where its foreshortening tilt
turns (:class:`models.recon.rendering.ProbeParams`), so that tilt is a pure rotation there (no
coupled translation); the general rotation residual turns about the mask centroid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.geometry.frames import VIEW_ANGLES_DEG, ProbePose, nominal_pose, rotation_z

FloatArray = NDArray[np.float64]

POSE_INITS = ("base", "mask", "nominal")
MIN_FORESHORTENING_DEG = 2.0
"""Below this estimated tilt a view gets no foreshortened start candidates."""


@dataclass(frozen=True)
class MaskAxis:
    """The long axis of one mask in in-plane mm (lateral, depth): apex (2,), base midpoint (2,),
    unit direction apex → base (2,), visible length (mm) and basal half-width (mm)."""

    apex: FloatArray
    base: FloatArray
    direction: FloatArray
    length_mm: float
    half_width_mm: float


def mask_axis(mask: NDArray[np.uint8], spacing_mm: tuple[float, float]) -> MaskAxis:
    """Apex, base midpoint and long axis of a mask (H, W).

    The direction starts as the principal axis of the cavity pixels (pointing away from the
    probe) and is refined three times to run from the apex to the midpoint of the basal-most
    3 mm of the cavity. The half-width is the largest half-width of the cavity across the axis.
    """
    rows, cols = np.nonzero(mask)
    if len(rows) < 3:
        raise ValueError("mask has fewer than 3 foreground pixels")
    pts = np.stack([cols * spacing_mm[1], rows * spacing_mm[0]], -1).astype(np.float64)
    centre = pts.mean(0)
    cov = np.cov((pts - centre).T)
    _, vecs = np.linalg.eigh(cov)
    axis = vecs[:, -1]
    if axis[1] < 0:
        axis = -axis
    apex, base_mid = centre, centre
    for _ in range(3):
        proj = (pts - centre) @ axis
        apex = centre + proj.min() * axis
        base_mid = pts[proj >= proj.max() - 3.0].mean(0)
        new_axis = base_mid - apex
        norm = float(np.linalg.norm(new_axis))
        if norm < 1e-6:
            break
        axis = new_axis / norm
    across = (pts - apex) @ np.array([-axis[1], axis[0]])
    half_width = 0.5 * float(across.max() - across.min())
    length = float(np.linalg.norm(base_mid - apex))
    return MaskAxis(apex, base_mid, axis, length, half_width)


def mask_long_axis(mask: NDArray[np.uint8], spacing_mm: tuple[float, float]) -> tuple[FloatArray, FloatArray]:
    """Apex point (2,) and unit long-axis direction (2,) of a mask, in in-plane mm (lateral, depth)."""
    ax = mask_axis(mask, spacing_mm)
    return ax.apex, ax.direction


def _axis_pose(view: str, point: FloatArray, direction: FloatArray, z_mm: float) -> ProbePose:
    """Pose mapping in-plane ``direction`` onto +z and in-plane ``point`` onto ``(0, 0, z_mm)``,
    in the view's nominal plane orientation about +z."""
    lateral = rotation_z(math.radians(VIEW_ANGLES_DEG[view])) @ np.array([1.0, 0.0, 0.0])
    z = np.array([0.0, 0.0, 1.0])
    u = direction
    col0 = u[0] * z + u[1] * lateral
    col1 = u[1] * z - u[0] * lateral
    rot = np.stack([col0, col1, np.cross(col0, col1)], axis=1)
    t = np.array([0.0, 0.0, z_mm]) - (point[0] * col0 + point[1] * col1)
    return ProbePose(rot, t, 1.0)


def pose_from_mask(view: str, mask: NDArray[np.uint8], spacing_mm: tuple[float, float]) -> ProbePose:
    """Pose mapping the mask's long axis onto +z (apex at the origin) in the view's nominal plane."""
    ax = mask_axis(mask, spacing_mm)
    return _axis_pose(view, ax.apex, ax.direction, 0.0)


def pose_from_base(view: str, mask: NDArray[np.uint8], spacing_mm: tuple[float, float],
                   length_mm: float) -> ProbePose:
    """Pose mapping the mask's long axis onto +z with its base midpoint at ``(0, 0, length_mm)``."""
    ax = mask_axis(mask, spacing_mm)
    return _axis_pose(view, ax.base, ax.direction, length_mm)


def initial_pose(view: str, mask: NDArray[np.uint8], spacing_mm: tuple[float, float], mode: str,
                 length_mm: float | None = None) -> ProbePose:
    """Initial pose of ``view`` from its ED mask (H, W); ``mode`` is one of :data:`POSE_INITS`
    (``base`` needs ``length_mm``, the longest view's visible length)."""
    if mode == "nominal":
        return nominal_pose(view, (int(mask.shape[0]), int(mask.shape[1])), spacing_mm)
    if mode == "mask":
        return pose_from_mask(view, mask, spacing_mm)
    if mode == "base":
        if length_mm is None:
            raise ValueError("pose initialisation 'base' needs the long-axis length")
        return pose_from_base(view, mask, spacing_mm, length_mm)
    raise ValueError(f"unknown pose initialisation {mode!r}")


def foreshortening_guess_rad(visible_mm: float, length_mm: float, half_width_mm: float) -> float:
    """Tilt (rad, ≥ 0) about the lateral axis through the base that shortens the visible cavity of a
    half-ellipsoid (long semi-axis ``length_mm``, basal radius ``half_width_mm``) to ``visible_mm``.

    A plane through the basal centre tilted by θ cuts the half-ellipsoid along a chord of length
    ``s(θ) = (sin²θ/R² + cos²θ/L²)^(-1/2)``; solved for θ. 0 when the view is not shorter.
    """
    if visible_mm >= length_mm or half_width_mm <= 0 or half_width_mm >= length_mm:
        return 0.0
    s2 = (1.0 / visible_mm**2 - 1.0 / length_mm**2) / (1.0 / half_width_mm**2 - 1.0 / length_mm**2)
    return math.asin(math.sqrt(min(max(s2, 0.0), 1.0)))


@dataclass(frozen=True)
class PoseInit:
    """Initial poses of V views, their base midpoints ``pivots`` (V, 3) mm in the canonical frame,
    the long-axis length ``length_mm`` and, per view, the foreshortening tilts (rad) the probe
    fit starts from (always including 0)."""

    poses: list[ProbePose]
    pivots: FloatArray
    length_mm: float
    candidates_rad: list[list[float]]
    longest: int


def initial_poses(views: Sequence[str], masks: Sequence[NDArray[np.uint8]], spacings: Sequence[tuple[float, float]],
                  mode: str, multi_start: bool = True) -> PoseInit:
    """Initial poses from the ED masks (H_v, W_v) of ``views`` (see the module docstring).

    With ``multi_start``, a view whose visible length is shorter than the longest view's by more
    than a :data:`MIN_FORESHORTENING_DEG` tilt gets the candidate tilts ``(0, +θ, −θ)`` with θ from
    :func:`foreshortening_guess_rad`; the others ``(0,)``.
    """
    if mode not in POSE_INITS:
        raise ValueError(f"unknown pose initialisation {mode!r}")
    axes = [mask_axis(m, sp) for m, sp in zip(masks, spacings, strict=True)]
    longest = int(np.argmax([a.length_mm for a in axes]))
    length = axes[longest].length_mm
    poses = [initial_pose(v, m, sp, mode, length) for v, m, sp in zip(views, masks, spacings, strict=True)]
    pivots = np.stack([p.plane_to_world(a.base) for p, a in zip(poses, axes, strict=True)])
    candidates: list[list[float]] = []
    for a in axes:
        theta = foreshortening_guess_rad(a.length_mm, length, max(a.half_width_mm, axes[longest].half_width_mm))
        if multi_start and mode == "base" and math.degrees(theta) >= MIN_FORESHORTENING_DEG:
            candidates.append([0.0, theta, -theta])
        else:
            candidates.append([0.0])
    return PoseInit(poses, pivots, length, candidates, longest)


def apex_miss_mm(pose: ProbePose, apex: FloatArray) -> float:
    """Distance (mm) of the point ``apex`` (3,) from the imaging plane of ``pose``."""
    return float(abs(pose.normal @ (np.asarray(apex, dtype=np.float64) - pose.translation)))


def mask_centroid_world(mask: NDArray[np.uint8], spacing_mm: tuple[float, float], pose: ProbePose) -> FloatArray:
    """Centroid (3,) of the mask's pixels mapped to the canonical frame by ``pose``."""
    rows, cols = np.nonzero(mask)
    p = np.array([cols.mean() * spacing_mm[1], rows.mean() * spacing_mm[0]])
    return pose.plane_to_world(p)
