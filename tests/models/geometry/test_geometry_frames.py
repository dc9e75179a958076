"""The canonical frame, view planes and probe poses (models/geometry/frames.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.geometry.frames import (
    VIEW_ANGLES_DEG,
    VIEW_NAMES,
    ImagePlane,
    ProbePose,
    nominal_plane,
    nominal_pose,
    plane_axes,
    rotation_from_axis_angle,
    rotation_z,
)


def test_view_order_and_angles() -> None:
    assert VIEW_NAMES == ("A4C", "A2C", "A3C")
    assert [VIEW_ANGLES_DEG[v] for v in VIEW_NAMES] == [0.0, -60.0, -120.0]


@pytest.mark.parametrize("view", VIEW_NAMES)
def test_plane_axes_are_a_proper_rotation_containing_the_long_axis(view: str) -> None:
    r = plane_axes(VIEW_ANGLES_DEG[view])
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_allclose(r[:, 1], [0.0, 0.0, 1.0])  # image rows run apex → base
    angle = math.degrees(math.atan2(r[1, 0], r[0, 0]))
    assert angle == pytest.approx(VIEW_ANGLES_DEG[view])


def test_nominal_a4c_is_the_xz_plane() -> None:
    plane = nominal_plane("A4C")
    g = plane.grid_points()
    np.testing.assert_allclose(g[..., 1], 0.0, atol=1e-12)
    h, w = plane.shape
    # Centre column on the long axis, row 0 at the probe 20 mm above the apex, rows toward the base.
    centre = plane.pixel_to_world(np.array([0.0, h - 1.0]), np.array([(w - 1) / 2, (w - 1) / 2]))
    np.testing.assert_allclose(centre[:, :2], 0.0, atol=1e-12)
    assert centre[0, 2] == pytest.approx(-20.0) and centre[1, 2] > centre[0, 2]
    # Columns increase toward +x (lateral): septum on the screen's left.
    assert g[0, -1, 0] > 0 > g[0, 0, 0]


@pytest.mark.parametrize("view", VIEW_NAMES)
def test_nominal_planes_contain_the_long_axis(view: str) -> None:
    pose = nominal_pose(view)
    axis_points = np.array([[0.0, 0.0, z] for z in (0.0, 40.0, 90.0)])
    np.testing.assert_allclose(pose.world_to_plane(axis_points)[:, 2], 0.0, atol=1e-9)


@pytest.mark.parametrize("scale", [1.0, 0.8, 1.3])
def test_pixel_world_round_trip(scale: float) -> None:
    rng = np.random.default_rng(0)
    rot = rotation_from_axis_angle(rng.normal(size=3), 0.7) @ plane_axes(-60.0)
    pose = ProbePose(rot, rng.normal(size=3) * 10, scale)
    plane = ImagePlane((100, 120), (0.5, 0.7), pose)
    rows, cols = rng.uniform(0, 99, 50), rng.uniform(0, 119, 50)
    world = plane.pixel_to_world(rows, cols)
    back = pose.world_to_plane(world)
    np.testing.assert_allclose(back[:, 2], 0.0, atol=1e-9)
    np.testing.assert_allclose(back[:, 0] / 0.7, cols, atol=1e-9)
    np.testing.assert_allclose(back[:, 1] / 0.5, rows, atol=1e-9)
    # x = s·R·p + t with p = (c·sc, r·sr, 0).
    p = np.stack([cols * 0.7, rows * 0.5, np.zeros(50)], 1)
    np.testing.assert_allclose(world, scale * p @ rot.T + pose.translation, atol=1e-9)
    assert ProbePose.from_dict(pose.to_dict()).to_dict() == pose.to_dict()


def test_rotations() -> None:
    np.testing.assert_allclose(rotation_z(math.pi / 2) @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
    r = rotation_from_axis_angle(np.array([0.0, 0.0, 2.0]), 0.3)
    np.testing.assert_allclose(r, rotation_z(0.3), atol=1e-12)


def test_bad_poses_are_rejected() -> None:
    with pytest.raises(ValueError):
        ProbePose(np.diag([1.0, 1.0, -1.0]), np.zeros(3))
    with pytest.raises(ValueError):
        ProbePose(np.eye(3), np.zeros(3), 0.0)
    with pytest.raises(ValueError):
        nominal_pose("PLAX")
