"""Common phase axis and mask-based initial probe poses."""

from __future__ import annotations

import numpy as np
import pytest
from recon_analytic import ellipsoid_mask

from models.geometry.frames import VIEW_NAMES, nominal_plane
from models.recon.poses import initial_pose, mask_long_axis, pose_from_mask
from models.recon.temporal import align_views
from models.study import Study, ViewSequence


def _disc_clip(radii: np.ndarray) -> np.ndarray:
    yy, xx = np.mgrid[:48, :48]
    return np.stack([((yy - 24) ** 2 + (xx - 24) ** 2 <= r * r) for r in radii]).astype(np.uint8)


def _radii(n: int, ed: int) -> np.ndarray:
    """A cycle with ED at ``ed``, ES a third of the way later (areas strictly ordered)."""
    phase = ((np.arange(n) - ed) % n) / n
    contraction = np.where(phase <= 1 / 3, phase * 3, 1 - (phase - 1 / 3) * 1.5)
    return 18.0 - 8.0 * contraction


def test_views_with_different_lengths_share_one_phase_axis() -> None:
    clips = {"A4C": _disc_clip(_radii(30, ed=5)), "A2C": _disc_clip(_radii(24, ed=0)),
             "A3C": _disc_clip(_radii(36, ed=20))}
    study = Study({v: ViewSequence(v, m, (0.5, 0.5), 30.0) for v, m in clips.items()})
    aligned = align_views(study, n_frames=18)
    assert aligned.n_frames == 18 and aligned.warnings
    for v, m in aligned.masks.items():
        areas = m.reshape(18, -1).sum(1)
        assert int(np.argmax(areas)) == 0, v
        assert abs(int(np.argmin(areas)) - 6) <= 1, v  # ES at a third of the cycle
    assert aligned.frame_times_s[0] == 0.0 and np.all(np.diff(aligned.frame_times_s) > 0)


def test_equal_lengths_are_kept_and_rolled_to_ed() -> None:
    clips = {v: _disc_clip(_radii(20, ed=3)) for v in VIEW_NAMES}
    study = Study({v: ViewSequence(v, m, (0.5, 0.5), 25.0) for v, m in clips.items()})
    aligned = align_views(study)
    assert not aligned.warnings
    assert aligned.source_frames["A4C"][:3] == [3, 4, 5]
    np.testing.assert_array_equal(aligned.masks["A2C"][0], clips["A2C"][3])


@pytest.mark.parametrize("view", VIEW_NAMES)
def test_mask_pose_matches_the_nominal_pose_of_a_centred_ellipsoid(view: str) -> None:
    plane = nominal_plane(view, (200, 160), (0.7, 0.7))
    mask = ellipsoid_mask((24.0, 20.0, 44.0), plane)
    pose = initial_pose(view, mask, (0.7, 0.7), "mask")
    rows, cols = np.nonzero(mask)
    err = np.linalg.norm(pose.plane_to_world(np.stack([cols * 0.7, rows * 0.7], -1))
                         - plane.pixel_to_world(rows, cols), axis=1)
    assert err.max() < 1.5  # apex estimated to within a pixel or two
    np.testing.assert_allclose(pose.normal, plane.pose.normal, atol=1e-9)


def test_mask_long_axis_follows_a_tilted_cavity() -> None:
    yy, xx = np.mgrid[:120, :120].astype(float)
    ang = np.radians(20.0)
    u = np.array([np.sin(ang), np.cos(ang)])  # (lateral, depth)
    d = np.stack([xx - 60, yy - 60], -1)
    along, across = d @ u, d @ np.array([u[1], -u[0]])
    mask = ((along / 40) ** 2 + (across / 18) ** 2 <= 1).astype(np.uint8)
    apex, axis = mask_long_axis(mask, (1.0, 1.0))
    assert np.degrees(np.arccos(abs(axis @ u))) < 2.0
    np.testing.assert_allclose(apex, np.array([60, 60]) - 40 * u, atol=1.5)
    pose = pose_from_mask("A4C", mask, (1.0, 1.0))
    np.testing.assert_allclose(pose.plane_to_world(apex), 0.0, atol=1e-9)
