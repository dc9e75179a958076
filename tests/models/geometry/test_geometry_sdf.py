"""Exact signed distance: brute-force references, analytic box / sphere / torus."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh.triangles
from geometry_shapes import box_mesh, torus_mesh, winding_number

from models.geometry.mesh import Mesh, ellipsoid, icosphere
from models.geometry.sdf import MeshDistance, closest_points, signed_distance


def _brute_distance(mesh: Mesh, points: np.ndarray) -> np.ndarray:
    """Unsigned distance by testing every triangle (trimesh's closest point on triangle)."""
    tri = mesh.triangles
    out = np.empty(len(points))
    for i, x in enumerate(points):
        cp = trimesh.triangles.closest_point(tri, np.repeat(x[None], len(tri), axis=0))
        out[i] = np.linalg.norm(cp - x, axis=1).min()
    return out


def _box_sdf(x: np.ndarray, half: np.ndarray) -> np.ndarray:
    q = np.abs(x) - half
    return np.linalg.norm(np.maximum(q, 0.0), axis=1) + np.minimum(q.max(axis=1), 0.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force_and_winding_number(seed: int) -> None:
    rng = np.random.default_rng(seed)
    mesh = ellipsoid((30.0, 20.0, 45.0), subdivisions=2)
    pts = np.concatenate([
        rng.uniform(-60, 60, (150, 3)),  # far and mid-range, inside and out
        rng.uniform(-8, 8, (100, 3)),  # deep inside, near the medial axis
        mesh.vertices[rng.integers(0, len(mesh.vertices), 150)] + rng.normal(0, 0.5, (150, 3)),
    ])
    sd = signed_distance(mesh, pts)
    np.testing.assert_allclose(np.abs(sd), _brute_distance(mesh, pts), rtol=1e-9, atol=1e-9)
    assert np.array_equal(sd < 0, winding_number(mesh, pts) > 0.5)


def test_box_is_exact_including_edges_and_corners() -> None:
    half = np.array([10.0, 6.0, 15.0])
    mesh = box_mesh(tuple(half))
    rng = np.random.default_rng(3)
    pts = rng.uniform(-25, 25, (3000, 3))
    # Points whose closest feature is an edge or a corner, from inside and outside.
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * half
    pts = np.concatenate([pts, corners * 1.1, corners * 0.9, corners * np.array([1.2, 1.2, 0.5])])
    np.testing.assert_allclose(signed_distance(mesh, pts), _box_sdf(pts, half), rtol=0, atol=1e-9)


@pytest.mark.parametrize("subdivisions", [2, 3, 4])
def test_sphere_within_faceting_tolerance(subdivisions: int) -> None:
    r = 25.0
    mesh = icosphere(subdivisions, r)
    tri = mesh.triangles
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inradius = np.min(np.abs(np.einsum("ij,ij->i", n / np.linalg.norm(n, axis=1, keepdims=True), tri[:, 0])))
    rng = np.random.default_rng(subdivisions)
    pts = rng.uniform(-50, 50, (4000, 3))
    sd = signed_distance(mesh, pts)
    analytic = np.linalg.norm(pts, axis=1) - r
    # The inscribed polyhedron lies between the spheres of radius ``inradius`` and r.
    assert np.all(sd >= analytic - 1e-9)
    assert np.all(sd <= analytic + (r - inradius) + 1e-9)


def test_non_convex_torus_sign() -> None:
    mesh = torus_mesh(30.0, 10.0, 64, 32)
    rng = np.random.default_rng(5)
    pts = rng.uniform(-45, 45, (4000, 3)) * np.array([1.0, 1.0, 0.4])
    ring = np.hypot(np.hypot(pts[:, 0], pts[:, 1]) - 30.0, pts[:, 2])
    clear = np.abs(ring - 10.0) > 0.5  # away from the faceting band
    sd = signed_distance(mesh, pts)
    assert np.array_equal(sd[clear] < 0, ring[clear] < 10.0)
    assert np.abs(sd - (ring - 10.0)).max() < 0.5


def test_closest_points_lie_on_the_surface() -> None:
    mesh = ellipsoid((20.0, 15.0, 30.0), subdivisions=3)
    rng = np.random.default_rng(7)
    pts = rng.uniform(-40, 40, (500, 3))
    cp = closest_points(mesh, pts)
    np.testing.assert_allclose(np.linalg.norm(cp.points - pts, axis=1), cp.distance, atol=1e-9)
    tri = mesh.triangles[cp.face]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert np.abs(np.einsum("ij,ij->i", cp.points - tri[:, 0], n / np.linalg.norm(n, axis=1)[:, None])).max() < 1e-9
    assert set(np.unique(cp.feature)) <= set(range(7))


def test_reusable_structure_and_empty_input() -> None:
    mesh = ellipsoid((20.0, 15.0, 30.0), subdivisions=2)
    md = MeshDistance(mesh)
    rng = np.random.default_rng(8)
    a, b = rng.uniform(-30, 30, (50, 3)), rng.uniform(-30, 30, (70, 3))
    np.testing.assert_array_equal(np.concatenate([md.signed_distance(a), md.signed_distance(b)]),
                                  md.signed_distance(np.concatenate([a, b])))
    assert md.signed_distance(np.zeros((0, 3))).shape == (0,)
