"""marching_cubes / sdf_grid_points: analytic spheres, border capping, round trip with the SDF."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.errors import ModelError
from models.geometry.marching import marching_cubes, sdf_grid_points
from models.geometry.mesh import ellipsoid, is_watertight, mesh_volume_mm3
from models.geometry.sdf import MeshDistance


@pytest.mark.parametrize("resolution", [48, 64])
def test_sphere_sdf_gives_watertight_outward_mesh(resolution: int) -> None:
    r, c = 20.0, np.array([0.4, -0.3, 12.0])
    pts, origin, spacing, shape = sdf_grid_points(c - 26.0, c + 26.0, resolution)
    mesh = marching_cubes((np.linalg.norm(pts - c, axis=1) - r).reshape(shape), origin, spacing)
    assert is_watertight(mesh)
    vol = mesh_volume_mm3(mesh)
    assert vol > 0  # outward winding
    assert vol == pytest.approx(4 / 3 * math.pi * r**3, rel=0.01)
    np.testing.assert_allclose(np.linalg.norm(mesh.vertices - c, axis=1), r, atol=0.05 * spacing.max())


def test_callable_field_and_anisotropic_spacing() -> None:
    a = np.array([25.0, 18.0, 40.0])

    def field(p: np.ndarray) -> np.ndarray:
        return np.linalg.norm(p / a, axis=1) - 1.0  # negative inside, same zero set as the ellipsoid

    spacing = np.array([1.0, 0.8, 1.5])
    shape = (60, 56, 62)
    origin = -(np.array(shape) - 1) * spacing / 2
    mesh = marching_cubes(field, origin, spacing, shape=shape)
    assert is_watertight(mesh)
    assert mesh_volume_mm3(mesh) == pytest.approx(4 / 3 * math.pi * a.prod(), rel=0.01)


def test_surface_touching_the_border_is_capped() -> None:
    pts, origin, spacing, shape = sdf_grid_points([-15.0] * 3, [15.0] * 3, 31)
    mesh = marching_cubes((np.linalg.norm(pts, axis=1) - 20.0).reshape(shape), origin, spacing)
    assert is_watertight(mesh)
    assert mesh.vertices.min() >= -15.0 - 1e-9 and mesh.vertices.max() <= 15.0 + 1e-9
    # Cube [-15, 15]^3 minus the eight corners outside the radius-20 sphere.
    assert 0.9 * 30.0**3 < mesh_volume_mm3(mesh) < 30.0**3


def test_mesh_to_sdf_to_mesh_round_trip() -> None:
    mesh = ellipsoid((22.0, 16.0, 35.0), 3, centre=(0.0, 0.0, 40.0))
    pts, origin, spacing, shape = sdf_grid_points([-28.0, -22.0, 0.0], [28.0, 22.0, 80.0], (36, 30, 50))
    back = marching_cubes(MeshDistance(mesh).signed_distance(pts).reshape(shape), origin, spacing)
    assert is_watertight(back)
    assert mesh_volume_mm3(back) == pytest.approx(mesh_volume_mm3(mesh), rel=0.01)


def test_grid_helper_and_errors() -> None:
    pts, origin, spacing, shape = sdf_grid_points([0.0, 0.0, 0.0], [1.0, 2.0, 4.0], (2, 3, 5))
    assert shape == (2, 3, 5) and pts.shape == (30, 3)
    np.testing.assert_allclose(spacing, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(pts[-1], [1.0, 2.0, 4.0])
    np.testing.assert_allclose(pts[1], [0.0, 0.0, 1.0])  # C order: last axis fastest
    with pytest.raises(ModelError):
        marching_cubes(np.ones((4, 4, 4)), origin, 1.0)
    with pytest.raises(ValueError):
        sdf_grid_points([0.0] * 3, [0.0, 1.0, 1.0], 4)
