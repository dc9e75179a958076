"""Basal anatomy of the shape model (cohort-2.0): closed forms of the rim, the basal ellipticity and
the outflow tract, invariants of the canonical frame, and the basal metrics used for realism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.cohort.basal import basal_metrics, section
from models.cohort.realism import subject_metrics
from models.cohort.shape_model import (
    BASAL_MODES,
    LVOT_AZIMUTH_DEG,
    MODE_INDEX,
    PROFILE_MODES,
    SHAPE_MODES,
    ShapeParams,
    build_ed_shape,
    lvot_sector,
)
from models.cohort.subject import generate_subject
from models.cohort.template import DEFAULT_TEMPLATE, Template
from models.geometry.frames import VIEW_ANGLES_DEG
from models.geometry.mesh import Mesh, ellipsoid, is_watertight, mesh_volume_ml

T = DEFAULT_TEMPLATE


def _params(**values: float) -> ShapeParams:
    """All local modes 0 (truncation 122°) except ``values``."""
    modes = [0.0] * len(SHAPE_MODES)
    modes[MODE_INDEX["truncation"]] = 122.0
    for k, v in values.items():
        modes[MODE_INDEX[k]] = v
    return ShapeParams(150.0, 0.58, tuple(modes))


def _base_ring(p: ShapeParams) -> np.ndarray:
    return build_ed_shape(p).mesh.vertices[T.base_slice]


def test_basal_modes_are_appended_and_trefoil_s3_is_gone() -> None:
    names = [m.name for m in SHAPE_MODES]
    assert names[-len(BASAL_MODES) - len(PROFILE_MODES):-len(PROFILE_MODES)] == list(BASAL_MODES)
    assert names[-len(PROFILE_MODES):] == list(PROFILE_MODES)
    assert "trefoil_s3" not in names and "trefoil_c3" in names


@pytest.mark.parametrize("view_deg", sorted(VIEW_ANGLES_DEG.values()))
def test_sin3phi_vanishes_on_every_nominal_plane_but_cos3phi_does_not(view_deg: float) -> None:
    # Both half-planes of each apical view (θ and θ + 180°) cut the wall where sin 3φ = 0.
    for phi in (math.radians(view_deg), math.radians(view_deg + 180.0)):
        assert abs(math.sin(3 * phi)) < 1e-12
        assert abs(math.cos(3 * phi)) == pytest.approx(1.0)


@pytest.mark.parametrize("h", [0.0, 4.0, 7.0, 12.0])
def test_lvot_rise_closed_form_and_mitral_centre_kept(h: float) -> None:
    p = _params(lvot_height=h)
    base = _base_ring(p)
    g = lvot_sector(T.phi)
    np.testing.assert_allclose(base[:, 2], p.length_mm + h * (g - g.mean()), atol=1e-9)
    np.testing.assert_allclose(base.mean(axis=0), [0.0, 0.0, p.length_mm], atol=1e-9)
    if h > 0:
        top = int(np.argmax(base[:, 2]))
        assert math.degrees(T.phi[top]) - 360.0 == pytest.approx(LVOT_AZIMUTH_DEG, abs=360.0 / T.n_phi)


@pytest.mark.parametrize("a", [0.0, 1.5, 4.0])
def test_saddle_closed_form(a: float) -> None:
    p = _params(annular_saddle=a)
    z = _base_ring(p)[:, 2] - p.length_mm
    np.testing.assert_allclose(z, a * np.cos(2 * (T.phi - math.radians(LVOT_AZIMUTH_DEG))), atol=1e-9)
    assert float(z.max() - z.min()) == pytest.approx(2 * a, rel=0.01)  # −120° falls between grid angles


@pytest.mark.parametrize("e", [0.0, 0.06, 0.14])
def test_basal_ellipticity_closed_form_and_mid_cavity_untouched(e: float) -> None:
    ref = build_ed_shape(_params())
    ed = build_ed_shape(_params(basal_ellipticity=e))
    r = np.hypot(ed.wall[..., 0], ed.wall[..., 1])
    r0 = np.hypot(ref.wall[..., 0], ref.wall[..., 1])
    ratio = r / r0
    # Base ring (ramp 1): log r − log r_ref = const − e cos 2(φ − φ_lvot): minor axis at −120°,
    # minor / major = exp(−2e) (the ring is centrally symmetric, so no re-centring shear).
    resid = np.log(ratio[-1]) + e * np.cos(2 * (T.phi - math.radians(LVOT_AZIMUTH_DEG)))
    np.testing.assert_allclose(resid, resid.mean(), atol=1e-9)
    # Below s = 0.6 every ring is the reference ring times one global lateral factor (the EDV rescale).
    low = ed.s < 0.6
    np.testing.assert_allclose(ratio[low], ratio[low].mean(), rtol=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_new_modes_keep_the_frame_volume_and_a_closed_cycle(seed: int) -> None:
    s = generate_subject(seed)
    for name in BASAL_MODES:
        assert name in s.shape.to_dict()
    assert s.shape.mode("lvot_height") >= 0 and s.shape.mode("annular_saddle") >= 0
    cyc = s.cycle(6)
    for f in range(cyc.n_frames):
        assert is_watertight(cyc.mesh(f))
    assert mesh_volume_ml(cyc.mesh(0)) == pytest.approx(s.shape.edv_ml, rel=1e-9)
    assert subject_metrics(seed).ef_percent == pytest.approx(s.motion.ef_target, abs=1e-6)  # ES at c = 1


def test_flat_curtain_cap_is_straight_in_the_outflow_sector() -> None:
    p = _params(lvot_height=8.0, mitral_dome=3.0)
    v = build_ed_shape(p, Template(64, 32, 7)).mesh.vertices
    t = T
    cap = v[t.cap_slice].reshape(t.n_cap, t.n_phi, 3)
    centre = v[t.centre_index]
    j = int(np.argmax(lvot_sector(t.phi)))
    rim = v[t.base_slice][j]
    rho, g = t.cap_rho, float(lvot_sector(t.phi)[j])
    assert g > 0.98
    # Outflow sector: lift = dome (1 − ρ²)(1 − g ρ) (g ≈ 1): a straight sheet from the rim inward.
    centre_base = centre - np.array([0.0, 0.0, 3.0])
    lift = 3.0 * (1 - rho**2) * (1 - g * rho)
    expected = centre_base + rho[:, None] * (rim - centre_base) + lift[:, None] * np.array([0.0, 0.0, 1.0])
    np.testing.assert_allclose(cap[:, j], expected, atol=1e-9)


@pytest.mark.parametrize(("a", "b"), [(20.0, 20.0), (24.0, 18.0), (30.0, 15.0)])
def test_section_eccentricity_of_an_ellipsoid(a: float, b: float) -> None:
    m = ellipsoid((a, b, 40.0), subdivisions=5, centre=(0.0, 0.0, 40.0))
    sec = section(m, 40.0)
    assert sec is not None
    assert sec.eccentricity == pytest.approx(1.0 - b / a, abs=0.01)
    assert sec.radius_mm == pytest.approx(math.sqrt(a * b), rel=0.01)
    if a > b:
        assert abs(sec.minor_axis_deg) == pytest.approx(90.0, abs=1.0)


def test_basal_metrics_see_the_outflow_tract() -> None:
    flat = build_ed_shape(_params())
    lvot = build_ed_shape(_params(lvot_height=9.0))
    m0 = basal_metrics(flat.mesh, flat.length_mm)
    m1 = basal_metrics(lvot.mesh, lvot.length_mm)
    assert m0.above_mitral_mm == pytest.approx(0.0, abs=1e-6)
    assert m1.above_mitral_mm > 7.0
    assert m1.above_mitral_azimuth_deg == pytest.approx(LVOT_AZIMUTH_DEG, abs=6.0)
    assert m1.above_mitral_ml > m0.above_mitral_ml
    assert isinstance(flat.mesh, Mesh)
