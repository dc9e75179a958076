"""Signed-distance training samples of a cavity mesh (exact SDF from ``models.geometry.sdf``).

Two populations, DeepSDF-style:

* **near-surface**: area-uniform points on the surface displaced by isotropic Gaussian
  offsets, half with σ = ``sigmas_mm[0]`` (1 mm) and half with σ = ``sigmas_mm[1]`` (5 mm);
* **uniform**: uniform in an axis-aligned box ``bounds = (lo (3,), hi (3,))`` mm.

Signed distances are exact (negative inside). Output order: near points, then uniform.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from models.geometry.mesh import Mesh
from models.geometry.sdf import signed_distance

FloatArray = NDArray[np.float64]
Bounds = tuple[FloatArray, FloatArray] | tuple[tuple[float, float, float], tuple[float, float, float]]

DEFAULT_SIGMAS_MM: tuple[float, float] = (1.0, 5.0)


def surface_points(mesh: Mesh, rng: np.random.Generator, n: int) -> FloatArray:
    """``n`` points (n, 3) uniformly distributed by area on the mesh surface."""
    tri = mesh.triangles
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    face = rng.choice(len(tri), size=n, p=area / area.sum())
    r1 = np.sqrt(rng.uniform(0.0, 1.0, size=n))
    r2 = rng.uniform(0.0, 1.0, size=n)
    t = tri[face]
    out: FloatArray = (
        (1.0 - r1)[:, None] * t[:, 0] + (r1 * (1.0 - r2))[:, None] * t[:, 1] + (r1 * r2)[:, None] * t[:, 2]
    )
    return out


def default_bounds(vertices: FloatArray, margin_mm: float = 10.0) -> tuple[FloatArray, FloatArray]:
    """Axis-aligned box (lo, hi) around ``vertices`` (..., 3) enlarged by ``margin_mm``."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    return v.min(axis=0) - margin_mm, v.max(axis=0) + margin_mm


def sample_sdf(
    mesh: Mesh,
    rng: np.random.Generator,
    n_near: int,
    n_uniform: int,
    bounds: Bounds,
    sigmas_mm: tuple[float, float] = DEFAULT_SIGMAS_MM,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Training samples of ``mesh``: points (n_near + n_uniform, 3) float32 mm and their exact
    signed distance (n_near + n_uniform,) float32 mm (negative inside)."""
    if n_near < 0 or n_uniform < 0:
        raise ValueError("sample counts must be non-negative")
    lo = np.asarray(bounds[0], dtype=np.float64).reshape(3)
    hi = np.asarray(bounds[1], dtype=np.float64).reshape(3)
    if not (hi > lo).all():
        raise ValueError("bounds must satisfy lo < hi on every axis")
    base = surface_points(mesh, rng, n_near)
    n_fine = n_near // 2
    sigma = np.where(np.arange(n_near) < n_fine, sigmas_mm[0], sigmas_mm[1])
    near = base + rng.standard_normal((n_near, 3)) * sigma[:, None]
    uniform = lo + rng.uniform(0.0, 1.0, size=(n_uniform, 3)) * (hi - lo)
    points = np.concatenate([near, uniform])
    sdf = signed_distance(mesh, points) if len(points) else np.zeros(0)
    return points.astype(np.float32), sdf.astype(np.float32)
