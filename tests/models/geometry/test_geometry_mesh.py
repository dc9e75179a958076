"""Mesh volume and watertightness (models/geometry/mesh.py) against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from geometry_shapes import box_mesh, torus_mesh

from models.errors import ModelError
from models.geometry.frames import rotation_from_axis_angle
from models.geometry.mesh import (
    Mesh,
    ellipsoid,
    face_normals,
    icosphere,
    is_watertight,
    mesh_volume_ml,
    mesh_volume_mm3,
    require_watertight,
    surface_area_mm2,
    transformed,
)


@pytest.mark.parametrize(("subdivisions", "rel_tol"), [(2, 0.04), (3, 0.01), (4, 0.0025), (5, 0.0007)])
def test_ellipsoid_volume_converges_to_closed_form(subdivisions: int, rel_tol: float) -> None:
    a, b, c = 30.0, 22.0, 45.0
    mesh = ellipsoid((a, b, c), subdivisions, centre=(1.0, -2.0, 40.0))
    exact = 4.0 / 3.0 * math.pi * a * b * c
    vol = mesh_volume_mm3(mesh)
    assert vol < exact  # the mesh is inscribed
    assert vol == pytest.approx(exact, rel=rel_tol)
    assert mesh_volume_ml(mesh) == pytest.approx(vol / 1000.0)
    assert is_watertight(mesh)


def test_box_and_torus_exact() -> None:
    assert mesh_volume_mm3(box_mesh((1.0, 2.0, 3.0), (5.0, 5.0, 5.0))) == pytest.approx(48.0)
    assert surface_area_mm2(box_mesh((1.0, 2.0, 3.0))) == pytest.approx(88.0)
    t = torus_mesh(30.0, 10.0, 128, 64)
    assert mesh_volume_mm3(t) == pytest.approx(2 * math.pi**2 * 30 * 100, rel=0.003)
    assert is_watertight(t)


def test_volume_is_rigid_invariant_and_sign_follows_winding() -> None:
    mesh = ellipsoid((20.0, 15.0, 30.0), 3)
    moved = transformed(mesh, rotation_from_axis_angle(np.array([1.0, 2.0, 3.0]), 1.1), np.array([5.0, 6.0, 7.0]))
    assert mesh_volume_mm3(moved) == pytest.approx(mesh_volume_mm3(mesh), rel=1e-12)
    flipped = Mesh(mesh.vertices, mesh.faces[:, ::-1].copy())
    assert mesh_volume_mm3(flipped) == pytest.approx(-mesh_volume_mm3(mesh))
    # Outward winding: normals point away from the centre.
    n = face_normals(mesh)
    assert (np.einsum("ij,ij->i", n, mesh.triangles.mean(axis=1)) > 0).all()


def test_icosphere_face_counts() -> None:
    for k in range(4):
        s = icosphere(k, 2.0)
        assert len(s.faces) == 20 * 4**k and len(s.vertices) == 10 * 4**k + 2
        np.testing.assert_allclose(np.linalg.norm(s.vertices, axis=1), 2.0)


def test_watertightness_detects_defects() -> None:
    mesh = icosphere(2)
    assert is_watertight(mesh)
    removed = Mesh(mesh.vertices, mesh.faces[1:])
    assert not is_watertight(removed)
    flipped_faces = mesh.faces.copy()
    flipped_faces[7] = flipped_faces[7, ::-1]
    assert not is_watertight(Mesh(mesh.vertices, flipped_faces))
    degenerate = mesh.faces.copy()
    degenerate[3, 1] = degenerate[3, 0]
    assert not is_watertight(Mesh(mesh.vertices, degenerate))
    with pytest.raises(ModelError):
        require_watertight(removed)
    require_watertight(mesh)


def test_mesh_validation() -> None:
    with pytest.raises(ValueError):
        Mesh(np.zeros((3, 2)), np.zeros((1, 3), dtype=np.int64))
    with pytest.raises(ValueError):
        Mesh(np.zeros((3, 3)), np.array([[0, 1, 3]]))
