"""Shared fixture for the export tests: a small beating ellipsoid as a ReconResult."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import trimesh

from models.geometry.frames import nominal_pose
from models.geometry.mesh import Mesh, mesh_volume_ml
from models.recon.result import ReconResult, ViewFit

ResultFactory = Callable[..., ReconResult]


def make_beating_result(n_frames: int = 6, subdivisions: int = 2, **overrides: object) -> ReconResult:
    """Prolate ellipsoid (apex at the origin, base at z = 80 mm) whose short axes shrink by up
    to 24% and recover over the cycle; ES is the middle frame."""
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    base = sphere.vertices * np.array([20.0, 18.0, 40.0]) + np.array([0.0, 0.0, 40.0])
    shrink = 1.0 - 0.12 * (1.0 - np.cos(2.0 * np.pi * np.arange(n_frames) / n_frames))
    verts = np.stack([base * np.array([k, k, 1.0]) for k in shrink])
    faces = np.asarray(sphere.faces, dtype=np.int64)
    vols = np.array([mesh_volume_ml(Mesh(v, faces)) for v in verts])
    fits = [
        ViewFit(view=v, dice_ed=0.95, iou_ed=0.905, dice_mean=0.94, iou_mean=0.89,
                pose=nominal_pose(v), ed_frame=0, es_frame=n_frames // 2)
        for v in ("A4C", "A2C")
    ]
    fields: dict[str, object] = {
        "vertices": verts,
        "faces": faces,
        "frame_times_s": np.arange(n_frames) * 0.04,
        "volumes_ml": vols,
        "ed_frame": 0,
        "es_frame": int(np.argmin(vols)),
        "view_fits": fits,
        "timings_s": {"anchor": 1.25, "motion": 3.5},
        "model_info": {"prior": "smoke", "prior_sha256": "ab" * 32, "profile": "default"},
    }
    fields.update(overrides)
    return ReconResult(**fields)  # type: ignore[arg-type]


@pytest.fixture
def beating_result() -> ReconResult:
    return make_beating_result()


@pytest.fixture
def result_factory() -> ResultFactory:
    return make_beating_result
