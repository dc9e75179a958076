"""Rendering: pixel → point mapping, probe parameterisation, boundary sampling, soft-mask loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.geometry.frames import VIEW_NAMES, ImagePlane, ProbePose, nominal_pose, rotation_from_axis_angle
from models.recon.rendering import (
    PixelBank,
    ProbeParams,
    alpha_per_mm,
    axis_angle_to_matrix,
    boundary_weights,
    pixels_to_points,
    render_loss,
)


def _random_pose(rng: np.random.Generator) -> ProbePose:
    rot = rotation_from_axis_angle(rng.normal(size=3), float(rng.uniform(0, math.pi)))
    return ProbePose(rot, rng.normal(size=3) * 20, float(rng.uniform(0.8, 1.2)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pixels_to_points_matches_image_plane(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pose = _random_pose(rng)
    plane = ImagePlane((100, 80), (0.6, 0.8), pose)
    rows, cols = rng.uniform(0, 100, 50), rng.uniform(0, 80, 50)
    expected = plane.pixel_to_world(rows, cols)
    got = pixels_to_points(
        torch.tensor(np.stack([rows, cols], -1)), torch.tensor([0.6, 0.8], dtype=torch.float64),
        torch.tensor(pose.rotation), torch.tensor(pose.translation), torch.tensor(pose.scale, dtype=torch.float64),
    )
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-9)


def test_axis_angle_is_a_rotation_about_its_axis() -> None:
    axis = np.array([1.0, 2.0, -0.5])
    axis /= np.linalg.norm(axis)
    r = axis_angle_to_matrix(torch.tensor(axis * 0.7)).numpy()
    np.testing.assert_allclose(r, rotation_from_axis_angle(axis, 0.7), atol=1e-12)


def test_probe_params_start_at_initial_poses_and_anchor_stays_put() -> None:
    poses = [nominal_pose(v) for v in VIEW_NAMES]
    probes = ProbeParams(poses, np.zeros((3, 3)), anchored=[True, False, False], optimise_scale=True)
    for got, want in zip(probes.poses(), poses, strict=True):
        np.testing.assert_allclose(got.rotation, want.rotation, atol=1e-6)
        np.testing.assert_allclose(got.translation, want.translation, atol=1e-4)
    with torch.no_grad():
        probes.omega.fill_(0.1)
        probes.delta.fill_(2.0)
        probes.log_scale.fill_(0.05)
    moved = probes.poses()
    np.testing.assert_allclose(moved[0].rotation, poses[0].rotation, atol=1e-6)
    np.testing.assert_allclose(moved[0].translation, poses[0].translation, atol=1e-4)
    assert moved[0].scale == pytest.approx(1.0)
    assert not np.allclose(moved[1].translation, poses[1].translation, atol=1e-2)
    assert moved[1].scale == pytest.approx(math.exp(0.05), rel=1e-5)


def test_rotation_residual_turns_about_the_pivot() -> None:
    pose = nominal_pose("A2C")
    pivot = pose.plane_to_world(np.array([70.0, 55.0]))
    probes = ProbeParams([pose], pivot[None], anchored=[False])
    # the pixel that maps onto the pivot keeps its position under any rotation residual
    p = pose.world_to_plane(pivot)
    rc = torch.tensor([[p[1] / 0.7, p[0] / 0.7]], dtype=torch.float32)
    with torch.no_grad():
        probes.omega.copy_(torch.tensor([[0.1, -0.2, 0.05]]))
        rot, trans, scale = probes.transforms()
        x = pixels_to_points(rc, torch.tensor([0.7, 0.7]), rot[0], trans[0], scale[0])
    np.testing.assert_allclose(x[0].numpy(), pivot, atol=1e-3)


def test_boundary_weights_favour_the_boundary_and_ignore_far_background() -> None:
    mask = np.zeros((80, 80), dtype=np.uint8)
    mask[20:60, 25:55] = 1
    w = boundary_weights(mask, (1.0, 1.0), sigma_mm=3.0, floor=0.02, roi_margin_mm=10.0)
    assert w.sum() == pytest.approx(1.0)
    assert w[20, 40] > 10 * w[40, 40]  # on the edge vs deep inside
    assert w[0, 0] == 0.0  # 20 mm outside the cavity
    assert w[40, 40] > 0.0  # the interior is still sampled (floor)


def test_pixel_bank_samples_only_observed_pixels_with_their_labels() -> None:
    mask = np.zeros((1, 40, 50), dtype=np.uint8)
    mask[0, 10:30, 10:40] = 1
    seen = np.zeros((40, 50), dtype=bool)
    seen[:, :25] = True
    bank = PixelBank.build([mask], [(1.0, 1.0)], torch.device("cpu"), observed=[seen])
    gen = torch.Generator().manual_seed(0)
    rc, target = bank.sample(torch.tensor([0]), 2000, gen)
    assert rc.shape == (1, 1, 2000, 2) and target.shape == (1, 1, 2000)
    rows, cols = rc[0, 0, :, 0].long().numpy(), rc[0, 0, :, 1].long().numpy()
    assert (cols < 25).all()
    np.testing.assert_array_equal(target[0, 0].numpy(), mask[0, rows, cols])


def test_render_loss_prefers_the_true_surface() -> None:
    x = torch.linspace(-10, 10, 201)
    target = (x < 0).float()[None, None]
    exact = render_loss(x[None, None], target, alpha=2.0)
    shifted = render_loss((x + 2.0)[None, None], target, alpha=2.0)
    assert float(exact) < float(shifted)


def test_alpha_schedule_spans_the_reference_range_in_mm() -> None:
    assert alpha_per_mm(20, 150, 50.0, 0.0) == pytest.approx(0.4)
    assert alpha_per_mm(20, 150, 50.0, 1.0) == pytest.approx(3.0)
    assert alpha_per_mm(20, 150, 50.0, 2.0) == pytest.approx(3.0)
