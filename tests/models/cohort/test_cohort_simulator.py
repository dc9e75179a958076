"""View simulator: perturbation geometry (closed forms), masks of known shapes inside the fan."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.cohort.shape_model import SHAPE_MODES, ShapeParams, build_ed_shape
from models.cohort.simulator import (
    NOMINAL,
    ProbePerturbation,
    perturbed_pose,
    sample_perturbation,
    simulate_sequence,
    simulate_view,
)
from models.cohort.subject import generate_subject
from models.geometry.frames import VIEW_NAMES, nominal_pose
from models.geometry.sector import sector_mask

SPACING = (0.7, 0.7)


def _spheroid(edv: float = 150.0, si: float = 0.55, nu_b_deg: float = 120.0) -> ShapeParams:
    modes = [0.0] * len(SHAPE_MODES)
    modes[[m.name for m in SHAPE_MODES].index("truncation")] = nu_b_deg
    return ShapeParams(edv, si, tuple(modes))


@pytest.mark.parametrize("view", VIEW_NAMES)
def test_nominal_mask_of_a_spheroid_has_the_closed_form_extent(view: str) -> None:
    """All local modes off: a truncated prolate spheroid, axisymmetric, so every nominal view
    shows the same meridian section: rows from the apex depth (20 mm) to the base, half-width
    r(z) = a·sqrt(1 − ((z − c)/c)²)."""
    p = _spheroid()
    ed = build_ed_shape(p)
    mask, plane = simulate_view(ed.mesh, view)
    rows = np.nonzero(mask.any(axis=1))[0]
    apex_row = 20.0 / SPACING[0]
    assert rows.min() == math.ceil(apex_row)
    assert rows.max() == math.floor(apex_row + p.length_mm / SPACING[0])
    length = p.length_mm
    c = length / (1.0 - math.cos(math.radians(120.0)))
    a = float(np.hypot(ed.wall[..., 0], ed.wall[..., 1]).max())
    centre = (mask.shape[1] - 1) / 2.0
    for r in rows[5:-3:7]:
        z = r * SPACING[0] - 20.0
        expected = a * math.sqrt(max(0.0, 1.0 - ((z - c) / c) ** 2))
        cols = np.nonzero(mask[r])[0]
        half = 0.5 * (cols.max() - cols.min() + 1) * SPACING[1]
        assert half == pytest.approx(expected, abs=1.2 * SPACING[1]), (r, z)
        assert 0.5 * (cols.max() + cols.min()) == pytest.approx(centre, abs=1.0)
    np.testing.assert_allclose(plane.pose.rotation, nominal_pose(view).rotation)


def test_rotation_perturbation_turns_the_plane_about_the_long_axis() -> None:
    pose = perturbed_pose("A4C", ProbePerturbation(rotation_deg=12.0))
    lateral = pose.rotation[:, 0]
    assert math.degrees(math.atan2(lateral[1], lateral[0])) == pytest.approx(12.0)
    np.testing.assert_allclose(pose.rotation[:, 1], [0, 0, 1], atol=1e-12)


@pytest.mark.parametrize("tilt", [3.0, 10.0])
def test_tilt_perturbation_angle(tilt: float) -> None:
    pose = perturbed_pose("A2C", ProbePerturbation(tilt_deg=tilt, tilt_azimuth_deg=37.0))
    depth = pose.rotation[:, 1]
    assert math.degrees(math.acos(np.clip(depth @ [0, 0, 1], -1, 1))) <= tilt + 1e-9
    # The pivot (mid-cavity on the axis) stays on the plane.
    assert abs(pose.world_to_plane(np.array([0.0, 0.0, 45.0]))[2]) < 1e-9


@pytest.mark.parametrize("fs", [4.0, 12.0])
def test_foreshortening_puts_the_true_apex_out_of_plane(fs: float) -> None:
    pert = ProbePerturbation(foreshortening_mm=fs, foreshortening_pivot_mm=90.0)
    pose = perturbed_pose("A4C", pert)
    assert abs(pose.world_to_plane(np.zeros(3))[2]) == pytest.approx(fs)
    assert abs(pose.world_to_plane(np.array([0.0, 0.0, 90.0]))[2]) < 1e-9


def test_foreshortened_view_is_shorter() -> None:
    ed = generate_subject(3, "normal").ed_shape()
    nominal, _ = simulate_view(ed.mesh, "A4C")
    short, _ = simulate_view(ed.mesh, "A4C", ProbePerturbation(foreshortening_mm=12.0, foreshortening_pivot_mm=90.0))

    def length(m: np.ndarray) -> int:
        r = np.nonzero(m.any(axis=1))[0]
        return int(r.max() - r.min())

    assert length(short) < length(nominal) - 3


def test_offsets_move_the_plane_in_its_own_frame() -> None:
    base = perturbed_pose("A3C", NOMINAL)
    moved = perturbed_pose("A3C", ProbePerturbation(inplane_mm=3.0, depth_mm=-2.0, outplane_mm=1.5))
    np.testing.assert_allclose(moved.translation - base.translation, base.rotation @ [3.0, -2.0, 1.5])


def test_sample_perturbation_ranges_and_determinism() -> None:
    rng = np.random.default_rng(0)
    ps = [sample_perturbation(rng, 1.0, 90.0) for _ in range(300)]
    assert max(p.tilt_deg for p in ps) <= 10.0
    assert max(abs(p.rotation_deg) for p in ps) <= 15.0
    assert any(p.foreshortening_mm > 0 for p in ps) and any(p.foreshortening_mm == 0 for p in ps)
    again = [sample_perturbation(np.random.default_rng(0), 1.0, 90.0)]
    assert again[0] == ps[0]
    zero = sample_perturbation(np.random.default_rng(1), 0.0)
    assert (
        zero.tilt_deg,
        zero.rotation_deg,
        zero.inplane_mm,
        zero.outplane_mm,
        zero.depth_mm,
        zero.foreshortening_mm,
    ) == (0.0,) * 6


@pytest.mark.parametrize("seed", range(4))
def test_perturbed_masks_non_empty_and_inside_the_fan(seed: int) -> None:
    s = generate_subject(seed)
    cyc = s.cycle(8)
    rng = np.random.default_rng(seed)
    fan = sector_mask((224, 224), SPACING)
    for view in VIEW_NAMES:
        masks, plane = simulate_sequence(
            cyc.vertices, cyc.faces, view, sample_perturbation(rng, 0.6, s.shape.length_mm)
        )
        assert masks.shape == (8, 224, 224) and masks.dtype == np.uint8
        assert masks.reshape(8, -1).sum(axis=1).min() > 500
        assert not (masks & (1 - fan)).any()
        assert plane.shape == (224, 224)
        areas = masks.reshape(8, -1).sum(axis=1)
        assert int(np.argmax(areas)) in (0, 1, 7)  # largest section near ED
