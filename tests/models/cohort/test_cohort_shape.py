"""Shape model: watertight fixed topology, exact EDV / length / sphericity, canonical frame."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.cohort.shape_model import N_SHAPE_MODES, SHAPE_MODES, ShapeParams, build_ed_shape
from models.cohort.subject import generate_subject
from models.cohort.template import DEFAULT_TEMPLATE, Template
from models.geometry.mesh import Mesh, is_watertight, mesh_volume_ml

PHENOTYPES = ["normal", "dcm", "hypertrophic", "apical_aneurysm", "regional_hypokinesia"]


def test_at_least_18_modes_with_positive_spread() -> None:
    assert N_SHAPE_MODES >= 18
    assert all(m.std > 0 for m in SHAPE_MODES)
    assert len({m.name for m in SHAPE_MODES}) == len(SHAPE_MODES)


@pytest.mark.parametrize("n_phi,n_wall,n_cap", [(64, 32, 7), (16, 8, 2), (33, 5, 1)])
def test_template_is_a_closed_sphere(n_phi: int, n_wall: int, n_cap: int) -> None:
    t = Template(n_phi, n_wall, n_cap)
    f = t.faces
    assert f.shape == (2 * n_phi * (n_wall + n_cap), 3)
    v, e = t.n_vertices, 3 * len(f) // 2
    assert v - e + len(f) == 2  # Euler characteristic of a sphere


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("phenotype", PHENOTYPES)
def test_ed_mesh_watertight_exact_volume_and_canonical_frame(seed: int, phenotype: str) -> None:
    s = generate_subject(seed, phenotype)
    ed = s.ed_shape()
    mesh = ed.mesh
    assert is_watertight(mesh)
    assert mesh_volume_ml(mesh) == pytest.approx(s.shape.edv_ml, rel=1e-9)
    np.testing.assert_allclose(mesh.vertices[0], 0.0, atol=1e-12)  # apex pole at the origin
    base = mesh.vertices[DEFAULT_TEMPLATE.base_slice]
    np.testing.assert_allclose(base.mean(axis=0), [0.0, 0.0, s.shape.length_mm], atol=1e-9)
    assert mesh.vertices[:, 2].min() >= -1e-9  # nothing below the apex
    # Sphericity index (EDV-equivalent diameter / length) is exact by construction.
    d_eq = math.sqrt(6.0 * s.shape.edv_ml * 1000.0 / (math.pi * s.shape.length_mm))
    assert d_eq / s.shape.length_mm == pytest.approx(s.shape.sphericity, rel=1e-9)


def test_plain_truncated_spheroid_matches_closed_form_volume() -> None:
    """All local modes off, p = 1: a prolate spheroid truncated at ν_b; the fine template's
    volume converges to π a² ∫(1 − ((z − c)/c)²) dz with a, c from the mesh."""
    modes = [0.0] * len(SHAPE_MODES)
    nu_b_deg = 120.0
    modes[[m.name for m in SHAPE_MODES].index("truncation")] = nu_b_deg
    p = ShapeParams(150.0, 0.55, tuple(modes))
    fine = Template(n_phi=256, n_wall=128, n_cap=4)
    ed = build_ed_shape(p, fine)
    length = p.length_mm
    c = length / (1.0 - math.cos(math.radians(nu_b_deg)))
    wall = ed.wall
    a = float(np.hypot(wall[..., 0], wall[..., 1]).max())
    exact = math.pi * a**2 * (length - (length - c) ** 3 / (3 * c**2) - c / 3.0) / 1000.0
    assert mesh_volume_ml(ed.mesh) == pytest.approx(exact, rel=2e-3)
    r = np.hypot(wall[..., 0], wall[..., 1])
    z = wall[..., 2]
    np.testing.assert_allclose(r, a * np.sqrt(np.clip(1 - ((z - c) / c) ** 2, 0, None)), atol=2e-3 * a)


def test_shape_params_validation() -> None:
    with pytest.raises(ValueError):
        ShapeParams(150.0, 0.55, (0.0,))
    with pytest.raises(ValueError):
        ShapeParams(5.0, 0.55, tuple(m.mean for m in SHAPE_MODES))


def test_mesh_type_is_the_geometry_mesh() -> None:
    assert isinstance(generate_subject(1).ed_shape().mesh, Mesh)


@pytest.mark.parametrize(
    ("s", "phi_deg", "segment"),
    [
        (0.8, -60, 1),
        (0.8, -120, 2),
        (0.8, 180, 3),
        (0.8, 120, 4),
        (0.8, 60, 5),
        (0.8, 0, 6),
        (0.5, -60, 7),
        (0.5, 180, 9),
        (0.2, -60, 13),
        (0.2, -150, 14),
        (0.2, 120, 15),
        (0.2, 30, 16),
        (0.03, 77, 17),
    ],
)
def test_aha_segments_and_smooth_field(s: float, phi_deg: float, segment: int) -> None:
    from models.cohort.segments import regional_field, segment_of

    phi = np.radians(np.array(phi_deg, dtype=float))
    assert int(segment_of(np.array(s), phi)) == segment
    values = np.zeros(17)
    values[segment - 1] = 1.0
    own = float(regional_field(values, np.array(s), phi))
    assert own > 0.75  # smooth field: a segment's centre is dominated by its own value
    sharp = float(regional_field(values, np.array(s), phi, softness=0.01, softness_deg=2.0))
    assert sharp > 0.99
