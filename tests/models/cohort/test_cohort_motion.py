"""Motion model: ED max / ES min, asymmetric cycle, watertight frames, EF, twist, base descent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.cohort.motion import (
    MotionParams,
    build_cycle,
    cardiac_phase,
    contraction,
    deform,
    motion_field,
)
from models.cohort.subject import generate_subject
from models.cohort.template import DEFAULT_TEMPLATE
from models.geometry.mesh import Mesh, is_watertight, mesh_volume_ml

PHENOTYPES = ["normal", "dcm", "hypertrophic", "apical_aneurysm", "regional_hypokinesia"]


@pytest.mark.parametrize("alpha", [0.28, 1 / 3, 0.4])
def test_contraction_curve(alpha: float) -> None:
    tau = np.linspace(0.0, 1.0, 2001)
    c = contraction(tau, alpha)
    assert c[0] == 0.0 and c[-1] == pytest.approx(0.0, abs=1e-12)
    assert contraction(np.array([alpha]), alpha)[0] == pytest.approx(1.0)
    assert c.max() == pytest.approx(1.0)
    systole = c[tau <= alpha]
    assert np.all(np.diff(systole) >= -1e-12)  # monotone contraction ED → ES
    assert np.all(np.diff(c[tau >= alpha]) <= 1e-12)  # monotone relaxation ES → ED
    assert np.abs(np.diff(c)).max() < 0.01  # smooth (C¹ curve sampled finely)
    phase = cardiac_phase(np.array([0.0, alpha, 1.0 - 1e-9]), alpha)
    np.testing.assert_allclose(phase[:2], [0.0, np.pi])
    assert phase[2] == pytest.approx(2 * np.pi, abs=1e-6)


@pytest.mark.parametrize(("phenotype", "n_frames"), [(p, 20) for p in PHENOTYPES] + [("normal", 30), ("dcm", 25)])
def test_cycle_frames_watertight_ed_max_es_min(phenotype: str, n_frames: int) -> None:
    s = generate_subject(11, phenotype)
    cyc = s.cycle(n_frames)
    assert cyc.vertices.shape == (n_frames, DEFAULT_TEMPLATE.n_vertices, 3)
    assert all(is_watertight(cyc.mesh(i)) for i in range(n_frames))
    tri = cyc.vertices[:, cyc.faces]  # (T, F, 3, 3)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0]), axis=-1)
    assert area.min() > 1e-3  # no degenerate triangle in any frame (mm²)
    vols = np.array([mesh_volume_ml(cyc.mesh(i)) for i in range(n_frames)])
    np.testing.assert_allclose(vols, cyc.volumes_ml)
    assert cyc.ed_frame == 0 and int(np.argmax(vols)) == 0
    assert cyc.es_frame == int(np.argmin(vols))
    # Systole ≈ 1/3 of the cycle: ES within a frame of the subject's systolic fraction (0.28–0.40).
    assert abs(cyc.es_frame / n_frames - s.motion.systole_fraction) <= 1.0 / n_frames + 1e-9
    assert 0.25 <= cyc.es_frame / n_frames <= 0.42
    # Volume falls through systole and rises through diastole.
    assert np.all(np.diff(vols[: cyc.es_frame + 1]) < 0)
    assert np.all(np.diff(vols[cyc.es_frame :]) > -0.05 * vols[0])
    assert np.all(cyc.vertices[:, 0] == 0.0)  # the apex stays at the origin
    assert np.all(np.diff(cyc.frame_times_s) > 0)
    assert cyc.frame_times_s[-1] < s.motion.rr_s


@pytest.mark.parametrize("seed", range(8))
def test_ef_matches_target_when_reachable(seed: int) -> None:
    s = generate_subject(seed)
    ed = s.ed_shape()
    es = Mesh(deform(ed, motion_field(ed, s.motion), s.motion, 1.0), ed.template.faces)
    ef = 100.0 * (1.0 - mesh_volume_ml(es) / mesh_volume_ml(ed.mesh))
    k = s.motion.radial_fraction
    assert k is not None
    if 0.0 < k < 0.7:
        assert ef == pytest.approx(s.motion.ef_target, abs=1e-6)


def test_volume_monotone_in_contraction() -> None:
    for phenotype in PHENOTYPES:
        s = generate_subject(3, phenotype)
        ed = s.ed_shape()
        field = motion_field(ed, s.motion)
        vols = [mesh_volume_ml(Mesh(deform(ed, field, s.motion, c), ed.template.faces)) for c in np.linspace(0, 1, 11)]
        assert np.all(np.diff(vols) < 0), phenotype


def _neutral(s_motion: MotionParams, **kw: float) -> MotionParams:
    base = dict(long_shortening=0.0, twist_apex_deg=0.0, twist_base_deg=0.0, radial_fraction=0.0)
    base.update(kw)
    return dataclasses.replace(s_motion, segment_motion=(1.0,) * 17, **base)


def test_long_axis_shortening_moves_the_base_toward_the_apex() -> None:
    s = generate_subject(4, "normal")
    ed = s.ed_shape()
    m = _neutral(s.motion, long_shortening=0.15)
    v = deform(ed, motion_field(ed, m), m, 1.0)
    base = DEFAULT_TEMPLATE.base_slice
    np.testing.assert_allclose(v[base, 2], ed.mesh.vertices[base, 2] * 0.85)
    np.testing.assert_allclose(v[0], 0.0)


def test_twist_rotates_base_and_apex_in_opposite_directions() -> None:
    s = generate_subject(4, "normal")
    ed = s.ed_shape()
    m = _neutral(s.motion, twist_apex_deg=-10.0, twist_base_deg=6.0)
    v = deform(ed, motion_field(ed, m), m, 1.0)
    w0 = ed.wall
    w1 = v[DEFAULT_TEMPLATE.wall_slice].reshape(w0.shape)

    def angle(ring: int) -> float:
        a0 = np.arctan2(w0[ring, :, 1], w0[ring, :, 0])
        a1 = np.arctan2(w1[ring, :, 1], w1[ring, :, 0])
        return float(np.degrees(np.angle(np.exp(1j * (a1 - a0))).mean()))

    s_ring = ed.s
    assert angle(-1) == pytest.approx(6.0, abs=0.5)
    apical = int(np.argmin(np.abs(s_ring - 0.1)))
    assert angle(apical) == pytest.approx(-10.0 * (1 - s_ring[apical]) + 6.0 * s_ring[apical], abs=0.5)


def test_dyskinetic_apex_bulges_in_systole() -> None:
    s = generate_subject(2, "apical_aneurysm")
    ed = s.ed_shape()
    v = deform(ed, motion_field(ed, s.motion), s.motion, 1.0)
    r0 = np.hypot(*ed.wall[..., :2].transpose(2, 0, 1))
    w1 = v[DEFAULT_TEMPLATE.wall_slice].reshape(ed.wall.shape)
    r1 = np.hypot(*w1[..., :2].transpose(2, 0, 1))
    apical = (ed.s > 0.12) & (ed.s < 0.25)
    basal = ed.s > 0.7
    assert r1[apical].mean() > r0[apical].mean()  # outward in systole
    assert r1[basal].mean() < r0[basal].mean()


def test_fps_option_covers_more_than_a_cycle() -> None:
    s = generate_subject(5)
    rr = s.motion.rr_s
    cyc = build_cycle(s.ed_shape(), s.motion, 40, fps=30.0 / rr)  # 40 frames at 30 per cycle
    np.testing.assert_allclose(cyc.volumes_ml[30], cyc.volumes_ml[0], rtol=1e-9)


@pytest.mark.parametrize("gamma", [-0.2, 0.0, 0.15, 0.4])
def test_apical_gradient_closed_form(gamma: float) -> None:
    """Each wall ring's radius at ES is its ED radius × (1 − k·(1 + γ(1 − 2s))) (no twist, no base descent)."""
    s = generate_subject(4, "normal")
    ed = s.ed_shape()
    m = _neutral(s.motion, radial_fraction=0.3, apical_gradient=gamma)
    field = motion_field(ed, m)
    wall_es = deform(ed, field, m, 1.0)[DEFAULT_TEMPLATE.wall_slice].reshape(ed.wall.shape)
    r_ed = np.linalg.norm(ed.wall[:, :, :2] - field.ring_centre, axis=-1)
    r_es = np.linalg.norm(wall_es[:, :, :2] - field.ring_centre, axis=-1)
    expected = 1.0 - 0.3 * (1.0 + gamma * (1.0 - 2.0 * ed.s))
    np.testing.assert_allclose(r_es / r_ed, np.broadcast_to(expected[:, None], r_ed.shape), rtol=1e-9)


def test_apical_gradient_keeps_the_ef_exact_and_dyskinesia_unscaled() -> None:
    s = generate_subject(5, "apical_aneurysm")
    ed = s.ed_shape()
    flat = dataclasses.replace(s.motion, apical_gradient=0.0)
    w_flat, w_grad = motion_field(ed, flat).radial_weight, motion_field(ed, s.motion).radial_weight
    assert s.motion.apical_gradient != 0.0
    np.testing.assert_array_equal(w_grad[w_flat < 0], w_flat[w_flat < 0])  # bulging walls: not scaled
    es = Mesh(deform(ed, motion_field(ed, s.motion), s.motion, 1.0), ed.template.faces)
    ef = 100.0 * (1.0 - mesh_volume_ml(es) / mesh_volume_ml(ed.mesh))
    assert ef == pytest.approx(s.motion.ef_target, abs=1e-6)  # k is still solved exactly (quadratic in k)


@pytest.mark.parametrize(("seed", "pinned"), [
    (3, (64.86435471993927, 0.13217029880817413, -9.617163129823693, 57.70129509326041)),
    (900000, (46.17368408369619, 0.08477524961064986, -5.655679139393631, 67.75041276451523)),
])
def test_gradient_is_drawn_last_every_older_motion_parameter_kept(seed: int, pinned: tuple[float, ...]) -> None:
    """cohort-2.2's EF target, long-axis shortening, twist and heart rate of a seed (pinned) are unchanged."""
    m = generate_subject(seed).motion
    assert (m.ef_target, m.long_shortening, m.twist_apex_deg, m.heart_rate_bpm) == pinned


@pytest.mark.parametrize("phenotype", PHENOTYPES)
def test_every_phenotype_draws_a_gradient(phenotype: str) -> None:
    values = [generate_subject(seed, phenotype).motion.apical_gradient for seed in range(12)]
    assert len(set(values)) == len(values) and all(-0.5 <= v <= 0.5 for v in values)
    assert 0.0 < float(np.mean(values)) < 0.3


def test_apical_gradient_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="apical_gradient"):
        dataclasses.replace(generate_subject(1).motion, apical_gradient=0.8)
