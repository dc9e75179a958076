"""Fixtures for the reconstruction tests: analytic ellipsoid studies and a smoke-trained prior."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from recon_analytic import ellipsoid_mask

from models.geometry.frames import VIEW_NAMES, ImagePlane, nominal_plane
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
