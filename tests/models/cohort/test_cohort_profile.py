"""Radius-profile mode of the shape model (cohort-2.2, ``conicity``): closed form of the apical taper, the
basal part and the invariants untouched, the draw order that keeps every older parameter of a seed, and the
direction it moves the size-free radius profile of ``models.cohort.basal``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.cohort.basal import basal_metrics
from models.cohort.phenotypes import PHENOTYPES
from models.cohort.shape_model import (
    MODE_INDEX,
    PROFILE_MODES,
    SHAPE_MODES,
    ShapeParams,
    build_ed_shape,
    radius_profile,
)
from models.cohort.subject import generate_subject
from models.cohort.template import DEFAULT_TEMPLATE
from models.geometry.mesh import is_watertight, mesh_volume_ml

T = DEFAULT_TEMPLATE
NU_B = 122.0


def _params(**values: float) -> ShapeParams:
    """All local modes 0 (truncation 122°) except ``values``."""
    modes = [0.0] * len(SHAPE_MODES)
    modes[MODE_INDEX["truncation"]] = NU_B
    for k, v in values.items():
        modes[MODE_INDEX[k]] = v
    return ShapeParams(150.0, 0.58, tuple(modes))


def _radii(p: ShapeParams) -> np.ndarray:
    w = build_ed_shape(p).wall
    return np.asarray(np.hypot(w[..., 0], w[..., 1]).mean(axis=1))  # (n_wall,) ring radius (axisymmetric here)


def test_profile_mode_is_appended_last() -> None:
    names = [m.name for m in SHAPE_MODES]
    assert names[-len(PROFILE_MODES):] == list(PROFILE_MODES) == ["conicity"]


@pytest.mark.parametrize("p", [1.0, 0.85, 1.2])
@pytest.mark.parametrize("k", [-0.3, 0.0, 0.5, 1.0])
def test_apical_exponent_closed_form_basal_part_unchanged(p: float, k: float) -> None:
    nu_b = math.radians(NU_B)
    nu = T.wall_t * nu_b
    rho = radius_profile(nu, nu_b, p, k)
    apical = nu < math.pi / 2
    np.testing.assert_allclose(rho[apical], np.sin(nu[apical]) ** (p * (1 + k)), rtol=1e-12)
    np.testing.assert_allclose(rho[~apical], np.sin(nu[~apical]) ** p, rtol=1e-12)
    assert float(rho.max()) <= 1.0 + 1e-12


@pytest.mark.parametrize("k", [0.3, 1.0])
def test_conicity_narrows_the_apex_and_widens_base_mid_size_free(k: float) -> None:
    ref, con = _params(), _params(conicity=k)
    r0, r1 = _radii(ref), _radii(con)
    s = build_ed_shape(ref).s
    # Raw radii: the mesh is rescaled laterally for the exact EDV, so the basal (un-tapered) rings keep
    # one common ratio and the apical rings are relatively narrower.
    ratio = r1[1:] / r0[1:]
    basal = s[1:] >= 1.0 / (1.0 - math.cos(math.radians(NU_B)))
    np.testing.assert_allclose(ratio[basal], ratio[basal][0], rtol=1e-9)
    assert ratio[basal][0] > 1.0 and ratio[~basal].min() < 1.0
    m0 = basal_metrics(build_ed_shape(ref).mesh, ref.length_mm).radius_profile
    m1 = basal_metrics(build_ed_shape(con).mesh, con.length_mm).radius_profile
    assert m1[0] < m0[0] - 0.02  # z = 0.2 L narrower
    assert all(b > a for a, b in zip(m0[2:], m1[2:], strict=True))  # z ≥ 0.6 L wider


def test_conical_tip_at_one() -> None:
    # κ = 1, p = 1: near the apex r ∝ s (a cone), κ = 0: r ∝ √s (the rounded prolate pole).
    for k, power in ((1.0, 1.0), (0.0, 0.5)):
        p = _params(conicity=k)
        ed = build_ed_shape(p)
        r = _radii(p)
        i, j = 2, 4  # two rings near the apex
        slope = math.log(r[j] / r[i]) / math.log(ed.s[j] / ed.s[i])
        assert slope == pytest.approx(power, abs=0.05)


@pytest.mark.parametrize("k", [-0.45, 0.0, 0.6, 1.05])
@pytest.mark.parametrize("edv,si", [(80.0, 0.5), (150.0, 0.58), (260.0, 0.75)])
def test_invariants_hold_over_the_range(k: float, edv: float, si: float) -> None:
    p = ShapeParams(edv, si, _params(conicity=k, mitral_dome=2.0, lvot_height=7.0).modes)
    ed = build_ed_shape(p)
    assert is_watertight(ed.mesh)
    assert mesh_volume_ml(ed.mesh) == pytest.approx(edv, rel=1e-9)
    np.testing.assert_allclose(ed.mesh.vertices[0], 0.0, atol=1e-12)
    np.testing.assert_allclose(ed.mesh.vertices[T.base_slice].mean(axis=0), [0.0, 0.0, p.length_mm], atol=1e-9)
    d_eq = math.sqrt(6.0 * edv * 1000.0 / (math.pi * p.length_mm))
    assert d_eq / p.length_mm == pytest.approx(si, rel=1e-9)


# cohort-2.0 (main at c31dc25) parameters of three seeds: EDV, SI and the 22 local modes it had.
COHORT_20 = {
    0: (121.6300907567686, 0.5, [
        -0.147079075655, 116.277651725544, -0.001394093565, -0.034467534345, 0.118267789368, 0.011800702025,
        -0.125, 0.097129654244, 0.000584500717, -0.067866164973, 0.003670168144, 0.006453264521, 0.06106868616,
        0.000768267997, -0.031871860993, 0.013583040684, -0.0231252968, 0.590818127007, 8.205532827647,
        0.045032678391, 0.10755034676, 1.870674655369]),
    7: (144.29250392433903, 0.5612175941608804, [
        -0.350678423393, 119.627995169244, 0.015845559034, 0.039775597325, 0.002861750037, -0.067325815684,
        -0.064132675436, -0.01444132524, -0.051758353308, 0.018223478686, 0.012855548157, 0.010666637844,
        0.026372997494, -0.032824219016, 0.03324428587, -0.016249118184, -0.090608815401, 2.638727255893,
        5.892573735045, 0.007861117122, 0.153520080623, 1.505461289385]),
    900000: (192.08047192867843, 0.5327479677694704, [
        -0.024331908578, 130.432957516301, 0.055536651996, -0.005070963312, -0.003902506025, -0.004643721793,
        -0.035486088443, -0.015964328326, -5.7261392e-05, 0.023677746127, 0.01333310641, -0.035647553379,
        0.025990422301, 0.005187020192, 0.0411284342, -0.069507461668, 0.063194485786, 2.12440653016,
        11.978137466691, 0.009322365406, 0.094886212418, 3.141972426014]),
}


@pytest.mark.parametrize("seed", sorted(COHORT_20))
def test_draw_keeps_every_cohort_20_parameter_of_a_seed(seed: int) -> None:
    edv, si, modes = COHORT_20[seed]
    s = generate_subject(seed).shape
    assert s.edv_ml == pytest.approx(edv, rel=1e-12) and s.sphericity == pytest.approx(si, rel=1e-12)
    np.testing.assert_allclose(s.modes[: len(modes)], modes, atol=1e-11)
    z = (s.mode("conicity") - 0.3) / 0.3
    assert abs(z) <= 2.5 + 1e-9


@pytest.mark.parametrize("phenotype", PHENOTYPES)
def test_every_phenotype_draws_the_mode(phenotype: str) -> None:
    vals = [generate_subject(seed, phenotype).shape.mode("conicity") for seed in range(12)]
    assert len(set(vals)) == len(vals) and all(-0.46 < v < 1.06 for v in vals)
