"""Fixtures for the reconstruction tests: analytic ellipsoid studies and a smoke-trained prior."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from recon_analytic import ellipsoid_mask

from models.geometry.frames import VIEW_NAMES, ImagePlane, ProbePose, nominal_plane, rotation_from_axis_angle
from models.study import Study, ViewSequence

SPACING = (0.7, 0.7)


def ellipsoid_study(frames: Sequence[Sequence[float]], planes: dict[str, ImagePlane] | None = None,
                    views: Sequence[str] = VIEW_NAMES, shape: tuple[int, int] = (160, 128)) -> Study:
    """A study whose masks are apex-standing ellipsoids (semi-axes per frame) cut by ``planes``
    (default: the nominal planes of an image of ``shape``)."""
    out = {}
    for v in views:
        plane = planes[v] if planes is not None else nominal_plane(v, shape, SPACING)
        masks = np.stack([ellipsoid_mask(a, plane) for a in frames])
        out[v] = ViewSequence(v, masks, SPACING, 25.0)
    return Study(out)


def turned_plane(plane: ImagePlane, tilt_deg: float, offset_mm: tuple[float, float], pivot_z_mm: float) -> ImagePlane:
    """``plane`` rotated in-plane (about its normal through the long-axis point at ``pivot_z_mm``) and
    shifted in-plane by ``offset_mm``: a probe placed wrongly."""
    pose = plane.pose
    rot = rotation_from_axis_angle(pose.normal, math.radians(tilt_deg))
    pivot = np.array([0.0, 0.0, pivot_z_mm])
    t = rot @ (pose.translation - pivot) + pivot + pose.rotation[:, :2] @ np.asarray(offset_mm)
    return ImagePlane(plane.shape, plane.spacing_mm, ProbePose(rot @ pose.rotation, t, pose.scale))


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Run torch on one thread (faster for these small problems on a shared 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smoke_prior_path(smoke_prior: Path) -> Path:
    """A shape prior trained with the prior's ``smoke`` profile, as a checkpoint (``smoke_prior`` of
    tests/conftest.py: trained once per run, shared with the reliability tests)."""
    return smoke_prior
