"""Stand-in training shapes: LV-like ellipsoids with an exact SDF and analytic view masks.

Used by the smoke profile and the tests (fast, no cohort needed). An ellipsoid with
semi-axes (a, b, c) is centred at (0, 0, c) so its lower pole (the "apex") is the origin and
its long axis is +z, like the canonical LV frame. Frames of a "cycle" scale the semi-axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.geometry.frames import ImagePlane, ProbePose, nominal_plane, rotation_from_axis_angle
from models.geometry.mesh import Mesh

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Ellipsoid:
    """Semi-axes (a, b, c) mm, centred at (0, 0, c): apex at the origin, long axis +z."""

    a: float
    b: float
    c: float

    @property
    def axes(self) -> FloatArray:
        return np.array([self.a, self.b, self.c])

    @property
    def centre(self) -> FloatArray:
        return np.array([0.0, 0.0, self.c])

    @property
    def volume_mm3(self) -> float:
        return 4.0 / 3.0 * math.pi * self.a * self.b * self.c

    def inside(self, points: FloatArray) -> NDArray[np.bool_]:
        q = (np.asarray(points, dtype=np.float64) - self.centre) / self.axes
        return np.asarray((q**2).sum(axis=-1) < 1.0)

    def signed_distance(self, points: FloatArray, iterations: int = 64) -> FloatArray:
        """Exact signed distance (N,) mm (negative inside) by bisection on the Lagrange multiplier.

        The closest surface point is ``q_i = a_i² x_i / (a_i² + t)`` where t is the largest root
        of ``Σ (a_i x_i / (a_i² + t))² = 1`` (t > −min a_i²)."""
        x = np.asarray(points, dtype=np.float64).reshape(-1, 3) - self.centre
        a2 = self.axes**2

        def g(t: FloatArray) -> FloatArray:
            out: FloatArray = ((self.axes * x / (a2 + t[:, None])) ** 2).sum(axis=1) - 1.0
            return out

        lo = np.full(len(x), -a2.min() + 1e-9)
        hi = np.full(len(x), np.linalg.norm(x, axis=1).max() * self.axes.max() + 1.0)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            pos = g(mid) > 0  # g decreases in t; root to the right of mid
            lo = np.where(pos, mid, lo)
            hi = np.where(pos, hi, mid)
        t = 0.5 * (lo + hi)
        closest = a2 * x / (a2 + t[:, None])
        dist = np.linalg.norm(x - closest, axis=1)
        out: FloatArray = np.where(((x / self.axes) ** 2).sum(axis=1) < 1.0, -dist, dist)
        return out

    def mesh(self, subdivisions: int = 4) -> Mesh:
        """Watertight, outward-wound triangulation (icosphere scaled to the semi-axes)."""
        import trimesh

        sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
        verts = np.asarray(sphere.vertices) * self.axes + self.centre
        return Mesh(verts, np.asarray(sphere.faces, dtype=np.int64))

    def scaled(self, radial: float, longitudinal: float) -> Ellipsoid:
        return Ellipsoid(self.a * radial, self.b * radial, self.c * longitudinal)


def random_ellipsoid(rng: np.random.Generator) -> Ellipsoid:
    """An end-diastolic LV-sized ellipsoid (≈ 70–200 mL)."""
    return Ellipsoid(a=float(rng.uniform(18.0, 27.0)), b=float(rng.uniform(18.0, 27.0)),
                     c=float(rng.uniform(36.0, 48.0)))


def cycle_frames(ed: Ellipsoid, n_frames: int) -> list[Ellipsoid]:
    """A crude cycle: radial contraction up to 22 %, longitudinal up to 10 %, ED first, ES mid-way."""
    out = []
    for i in range(n_frames):
        k = 0.5 * (1.0 - math.cos(2.0 * math.pi * i / max(n_frames, 1)))
        out.append(ed.scaled(1.0 - 0.22 * k, 1.0 - 0.10 * k))
    return out


def perturbed_plane(view: str, rng: np.random.Generator | None, strength: float,
                    image_shape: tuple[int, int], spacing_mm: tuple[float, float]) -> ImagePlane:
    """The nominal plane of ``view`` tilted up to ~6°·strength about the apex and shifted ~2 mm·strength."""
    plane = nominal_plane(view, image_shape, spacing_mm)
    if rng is None or strength <= 0:
        return plane
    axis = rng.normal(size=3)
    rot = rotation_from_axis_angle(axis, math.radians(rng.normal(0.0, 3.0 * strength)))
    shift = rng.normal(0.0, 1.0 * strength, size=3)
    pose = plane.pose
    pose = ProbePose(rotation=rot @ pose.rotation, translation=rot @ pose.translation + shift, scale=pose.scale)
    return ImagePlane(plane.shape, plane.spacing_mm, pose)


def ellipsoid_view_mask(shape: Ellipsoid, plane: ImagePlane) -> NDArray[np.uint8]:
    """Binary cross-section (H, W) of the ellipsoid in ``plane`` (pixel centres inside → 1)."""
    pts = plane.grid_points().reshape(-1, 3)
    return shape.inside(pts).reshape(plane.shape).astype(np.uint8)
