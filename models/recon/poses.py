"""Initial probe poses for test-time optimisation, estimated from each view's ED mask.

Two initialisations:

* ``"nominal"`` — :func:`models.geometry.frames.nominal_pose`: the probe on the long axis,
  20 mm above the apex, the centre column on the axis (exact for an unperturbed textbook view).
* ``"mask"`` (default) — the nominal plane orientation about +z, but placed in-plane from
  the mask itself: the long axis runs from the mask's apex to the midpoint of its base and is
  mapped onto +z, the apex onto the origin. This absorbs in-plane probe offsets and sector
  tilts, and clips whose apex is not 20 mm below the probe (real echo), before any
  optimisation; only out-of-plane errors are left to the probe optimisation.

The pivot of each view (the point its rotation residual turns about) is the mask centroid
mapped to the canonical frame.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from models.geometry.frames import VIEW_ANGLES_DEG, ProbePose, nominal_pose, rotation_z

FloatArray = NDArray[np.float64]


def mask_long_axis(mask: NDArray[np.uint8], spacing_mm: tuple[float, float]) -> tuple[FloatArray, FloatArray]:
    """Apex point (2,) and unit long-axis direction (2,) of a mask, in in-plane mm (lateral, depth).

    The direction starts as the principal axis of the cavity pixels (pointing away from the
    probe) and is refined twice to run from the apex to the midpoint of the basal-most
    3 mm of the cavity.
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
    apex = centre
    for _ in range(3):
        proj = (pts - centre) @ axis
        apex = centre + proj.min() * axis
        base_mid = pts[proj >= proj.max() - 3.0].mean(0)
        new_axis = base_mid - apex
        norm = float(np.linalg.norm(new_axis))
        if norm < 1e-6:
            break
        axis = new_axis / norm
    return apex, axis


def pose_from_mask(view: str, mask: NDArray[np.uint8], spacing_mm: tuple[float, float]) -> ProbePose:
    """Pose mapping the mask's long axis onto +z (apex at the origin) in the view's nominal plane."""
    apex, u = mask_long_axis(mask, spacing_mm)
    lateral = rotation_z(math.radians(VIEW_ANGLES_DEG[view])) @ np.array([1.0, 0.0, 0.0])
    z = np.array([0.0, 0.0, 1.0])
    col0 = u[0] * z + u[1] * lateral
    col1 = u[1] * z - u[0] * lateral
    rot = np.stack([col0, col1, np.cross(col0, col1)], axis=1)
    t = -(apex[0] * col0 + apex[1] * col1)
    return ProbePose(rot, t, 1.0)


def initial_pose(view: str, mask: NDArray[np.uint8], spacing_mm: tuple[float, float], mode: str) -> ProbePose:
    """Initial pose of ``view`` from its ED mask (H, W); ``mode`` is ``"mask"`` or ``"nominal"``."""
    if mode == "nominal":
        return nominal_pose(view, (int(mask.shape[0]), int(mask.shape[1])), spacing_mm)
    if mode == "mask":
        return pose_from_mask(view, mask, spacing_mm)
    raise ValueError(f"unknown pose initialisation {mode!r}")


def mask_centroid_world(mask: NDArray[np.uint8], spacing_mm: tuple[float, float], pose: ProbePose) -> FloatArray:
    """Centroid (3,) of the mask's pixels mapped to the canonical frame by ``pose``."""
    rows, cols = np.nonzero(mask)
    p = np.array([cols.mean() * spacing_mm[1], rows.mean() * spacing_mm[0]])
    return pose.plane_to_world(p)
