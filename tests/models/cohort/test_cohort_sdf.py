"""SDF samples: shapes, dtypes, sign and magnitude consistent with the surface and bounds."""

from __future__ import annotations

import numpy as np

from models.cohort.sdf_samples import default_bounds, sample_sdf, surface_points
from models.cohort.subject import generate_subject


def test_sample_sdf_layout_and_signs() -> None:
    mesh = generate_subject(7).ed_shape().mesh
    lo, hi = default_bounds(mesh.vertices, 10.0)
    pts, sdf = sample_sdf(mesh, np.random.default_rng(0), 600, 200, (lo, hi))
    assert pts.shape == (800, 3) and sdf.shape == (800,)
    assert pts.dtype == np.float32 and sdf.dtype == np.float32
    uniform = pts[600:]
    assert (uniform >= lo - 1e-4).all() and (uniform <= hi + 1e-4).all()
    fine, coarse = np.abs(sdf[:300]), np.abs(sdf[300:600])
    assert np.median(fine) < np.median(coarse)  # σ = 1 mm vs 5 mm
    assert np.median(fine) < 1.5
    assert (sdf < 0).any() and (sdf > 0).any()
    # Points on the axis halfway up are inside, points beyond the box corners outside.
    _, probe = sample_sdf(
        mesh, np.random.default_rng(1), 0, 1, (np.array([-1.0, -1.0, 40.0]), np.array([1.0, 1.0, 41.0]))
    )
    assert probe[0] < -10.0


def test_surface_points_lie_on_the_surface() -> None:
    from models.geometry.sdf import signed_distance

    mesh = generate_subject(8).ed_shape().mesh
    p = surface_points(mesh, np.random.default_rng(0), 300)
    assert np.abs(signed_distance(mesh, p)).max() < 1e-6


def test_sdf_samples_are_deterministic() -> None:
    mesh = generate_subject(9).ed_shape().mesh
    b = default_bounds(mesh.vertices)
    a1 = sample_sdf(mesh, np.random.default_rng(5), 100, 50, b)
    a2 = sample_sdf(mesh, np.random.default_rng(5), 100, 50, b)
    np.testing.assert_array_equal(a1[0], a2[0])
    np.testing.assert_array_equal(a1[1], a2[1])
