"""Rigid ICP (no scaling) recovers a known rotation and translation."""

from __future__ import annotations

import numpy as np
import trimesh

from models.bench.metrics import apply_rigid, kabsch, rigid_align, sample_surface, surface_distances
from models.geometry.frames import rotation_from_axis_angle
from models.geometry.mesh import Mesh


def lv_like() -> Mesh:
    """An asymmetric egg (no rotational symmetry), so the pose is identifiable."""
    s = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    v = np.asarray(s.vertices) * [20.0, 15.0, 35.0] + [0.0, 0.0, 35.0]
    v[:, 0] += 0.004 * v[:, 2] ** 2
    v[:, 1] += 0.1 * np.maximum(v[:, 0], 0.0)
    return Mesh(v, np.asarray(s.faces, dtype=np.int64))


R0 = rotation_from_axis_angle(np.array([1.0, 2.0, 0.5]), np.radians(10.0))
T0 = np.array([3.0, -2.0, 4.0])


def test_icp_onto_a_mesh_recovers_the_pose() -> None:
    gt = lv_like()
    moved = sample_surface(gt, 2000, rng=0) @ R0.T + T0
    r, t = rigid_align(moved, gt)
    np.testing.assert_allclose(r @ R0, np.eye(3), atol=1e-6)
    np.testing.assert_allclose(r @ T0 + t, 0.0, atol=1e-5)
    assert abs(np.linalg.det(r) - 1.0) < 1e-9


def test_icp_onto_a_point_cloud_recovers_the_pose() -> None:
    """Different samples of the same surface: exact up to the cloud's sampling density."""
    gt = lv_like()
    cloud = sample_surface(gt, 20000, rng=1)
    moved = sample_surface(gt, 2000, rng=2) @ R0.T + T0
    r, t = rigid_align(moved, cloud)
    angle_deg = np.degrees(np.arccos(np.clip((np.trace(r @ R0) - 1.0) / 2.0, -1.0, 1.0)))
    assert angle_deg < 0.05
    np.testing.assert_allclose(r @ T0 + t, 0.0, atol=0.02)


def test_alignment_removes_the_distance() -> None:
    gt = lv_like()
    pred = apply_rigid(gt, R0, T0)
    assert surface_distances(pred, gt, n_samples=2000, rng=1).mae > 1.0
    r, t = rigid_align(pred.vertices, gt)
    assert surface_distances(apply_rigid(pred, r, t), gt, n_samples=2000, rng=1).hausdorff < 1e-4


def test_kabsch_never_reflects() -> None:
    rng = np.random.default_rng(5)
    src = rng.normal(size=(50, 3))
    mirrored = src * [1.0, 1.0, -1.0]
    r, _ = kabsch(src, mirrored)
    assert np.linalg.det(r) > 0
