"""Surface distances against closed forms and brute force."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from models.bench.metrics import (
    TriangleIndex,
    closest_points_on_triangles,
    point_to_mesh_distance,
    sample_surface,
    surface_distances,
)
from models.geometry.mesh import Mesh


def sphere(radius: float, centre: tuple[float, float, float] = (0.0, 0.0, 0.0), subdivisions: int = 4) -> Mesh:
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Mesh(np.asarray(s.vertices) + np.asarray(centre), np.asarray(s.faces, dtype=np.int64))


@pytest.mark.parametrize("dr", [0.5, 2.0])
def test_concentric_spheres_distance_is_the_radius_gap(dr: float) -> None:
    # Icosphere subdivision 4 at r = 20 mm: chord sagitta ≈ 0.02 mm bounds the deviation from dr.
    m = surface_distances(sphere(20.0), sphere(20.0 + dr), n_samples=4000, rng=0)
    assert m.mae == pytest.approx(dr, abs=0.03)
    assert m.rmse == pytest.approx(dr, abs=0.03)
    assert m.hausdorff == pytest.approx(dr, abs=0.05)
    assert m.chamfer == pytest.approx(2 * dr, abs=0.06)
    assert m.hausdorff >= m.rmse >= m.mae


def test_identical_meshes_have_zero_distance() -> None:
    m = surface_distances(sphere(15.0, subdivisions=3), sphere(15.0, subdivisions=3), n_samples=2000, rng=1)
    assert max(m.mae, m.rmse, m.hausdorff, m.chamfer) < 1e-9


def test_translated_sphere_hausdorff_is_the_shift() -> None:
    # Two unit-radius-20 spheres shifted by d: the symmetric Hausdorff distance is d.
    m = surface_distances(sphere(20.0), sphere(20.0, (3.0, 0.0, 0.0)), n_samples=20000, rng=2)
    assert m.hausdorff == pytest.approx(3.0, abs=0.1)
    assert m.as_dict()["hausdorff_mm"] == m.hausdorff


def test_exact_distance_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    base = sphere(22.0, subdivisions=2)
    mesh = Mesh(base.vertices * [1.0, 0.7, 1.5] + rng.normal(scale=0.8, size=base.vertices.shape), base.faces)
    points = rng.normal(scale=25.0, size=(400, 3))
    tri = mesh.triangles
    p = np.repeat(points, len(tri), axis=0)
    t = np.tile(tri, (len(points), 1, 1))
    reference = trimesh.triangles.closest_point(t, p)  # independent implementation, all pairs
    np.testing.assert_allclose(closest_points_on_triangles(p, t[:, 0], t[:, 1], t[:, 2]), reference, atol=1e-9)
    brute = np.linalg.norm(reference - p, axis=1).reshape(len(points), len(tri)).min(axis=1)
    dist, closest, face = TriangleIndex(mesh).query(points)
    np.testing.assert_allclose(dist, brute, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(closest - points, axis=1), dist, atol=1e-9)
    assert face.min() >= 0 and face.max() < len(tri)


def test_agrees_with_geometry_signed_distance() -> None:
    from models.geometry.sdf import signed_distance

    mesh = sphere(18.0, subdivisions=3)
    pts = np.random.default_rng(3).uniform(-30, 30, size=(500, 3))
    np.testing.assert_allclose(point_to_mesh_distance(pts, mesh), np.abs(signed_distance(mesh, pts)), atol=1e-9)


def test_surface_samples_are_area_uniform() -> None:
    # On a sphere, uniform area sampling makes z uniform on [-r, r] (Archimedes).
    pts = sample_surface(sphere(10.0), 20000, rng=4)
    np.testing.assert_allclose(np.linalg.norm(pts, axis=1), 10.0, atol=0.05)
    hist, _ = np.histogram(pts[:, 2], bins=10, range=(-10, 10))
    assert hist.min() > 0.9 * 2000 and hist.max() < 1.1 * 2000
