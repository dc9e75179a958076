"""The physics-grounded B-mode simulator: anatomy map, polar rendering, screen furniture, statistics."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from models.cohort.echo_physics import Acquisition, burn_in, render_bmode, sample_acquisition
from models.cohort.echo_scene import echogenicity_map, lv_frame
from models.cohort.echo_stats import fan_geometry, image_stats, speckle_fwhm_mm
from models.cohort.simulator import simulate_view
from models.cohort.subject import generate_subject
from models.geometry.sector import sector_mask

SPACING = (0.7, 0.7)
SHAPE = (240, 280)


@pytest.fixture(scope="module")
def lv() -> np.ndarray:
    mask, _ = simulate_view(generate_subject(700_000).cycle(8).mesh(0), "A4C", image_shape=SHAPE,
                            spacing_mm=SPACING)
    assert mask.sum() > 1000
    return mask


def test_lv_frame_points_from_apex_to_base(lv: np.ndarray) -> None:
    f = lv_frame(lv.astype(bool), SPACING)
    assert f is not None and f.u[0] > 0.8  # the long axis runs down the image
    assert 60.0 < f.length < 110.0 and f.v_lo < 0 < f.v_hi and f.half_width > 10.0
    assert lv_frame(np.zeros(SHAPE, bool), SPACING) is None


@pytest.mark.parametrize("view", ["A4C", "A2C", "A3C"])
def test_scene_blood_is_dark_and_the_atrium_abuts_the_mitral_plane(lv: np.ndarray, view: str) -> None:
    echo = echogenicity_map(lv, SPACING, np.random.default_rng(1), view)
    assert echo.shape == SHAPE and np.isfinite(echo).all() and echo.min() > 0
    cavity = lv.astype(bool)
    rows = np.flatnonzero(cavity.any(axis=1))
    base = int(rows.max())
    cols = np.flatnonzero(cavity[base - 3])
    below = echo[base + 4 : base + 12, cols.min() + 3 : cols.max() - 3]  # just across the mitral plane
    wall = echo[rows.min() + 20 : base - 20][~cavity[rows.min() + 20 : base - 20]]
    assert np.median(echo[cavity]) < 0.5 * np.median(wall)
    assert np.median(below) < 0.5 * np.median(wall)  # the left atrium: dark blood, not tissue


def test_render_is_deterministic_zero_outside_the_fan_and_darker_in_the_cavity(lv: np.ndarray) -> None:
    acq = Acquisition(half_angle_deg=35.0, clutter=0.0, dropout=0.0, shadow=0.0)
    echo = echogenicity_map(lv, SPACING, np.random.default_rng(2), "A4C")
    img = render_bmode(echo, SPACING, acq, np.random.default_rng(3))
    assert img.shape == SHAPE and img.dtype == np.uint8
    np.testing.assert_array_equal(img, render_bmode(echo, SPACING, acq, np.random.default_rng(3)))
    outside = sector_mask(SHAPE, SPACING, 36.0) == 0
    assert img[outside].max() == 0
    stats = image_stats(img, lv.astype(bool), SPACING)
    assert stats["cavity_median"] < 0.5 * stats["wall_ring_median"]
    half, _ = fan_geometry(img, SPACING)
    assert half == pytest.approx(35.0, abs=2.0)


def test_a_longer_pulse_gives_larger_axial_speckle(lv: np.ndarray) -> None:
    echo = np.full(SHAPE, 0.5)
    base = Acquisition(clutter=0.0, beam_w0_mm=0.6)
    sizes = [speckle_fwhm_mm(render_bmode(echo, SPACING, replace(base, pulse_sigma_mm=s), np.random.default_rng(4)),
                             SPACING)[0] for s in (0.2, 0.9)]
    assert sizes[1] > 1.3 * sizes[0]


def test_domain_randomisation_and_screen_furniture(lv: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    acqs = [sample_acquisition(rng) for _ in range(30)]
    assert len({round(a.dynamic_range_db) for a in acqs}) > 10 and any(a.dropout > 0 for a in acqs)
    assert all(30.0 <= a.half_angle_deg <= 45.0 for a in acqs)
    img = np.zeros(SHAPE, np.uint8)
    burned = [burn_in(img, np.random.default_rng(k)) for k in range(5)]
    assert any(b.max() > 100 for b in burned)  # text / ECG / bar drawn


def test_image_stats_separate_cavity_and_wall(lv: np.ndarray) -> None:
    rng = np.random.default_rng(6)
    img = render_bmode(echogenicity_map(lv, SPACING, rng, "A4C"), SPACING,
                       replace(sample_acquisition(rng), dropout=0.0, shadow=0.0, clutter=0.0), rng)
    s = image_stats(img, lv.astype(bool), SPACING)
    assert s["cavity_median"] < s["wall_ring_median"]
    assert 0.0 <= s["fan_dark_fraction"] <= 1.0 and s["speckle_axial_mm"] > 0


def test_a_physics_clip_keeps_one_scanner_and_cuts_the_label_to_its_fan():
    from models.cohort.echo_clip import physics_bmode_clip

    rr, cc = np.mgrid[:160, :128]
    masks = np.stack([(((rr - 20 - r) / r) ** 2 + ((cc - 64) / 18.0) ** 2 <= 1).astype(np.uint8) for r in (50, 45, 40)])
    frames, labels = physics_bmode_clip(masks, "A4C", (0.6, 0.6), np.random.default_rng(3))
    assert frames.shape == masks.shape and frames.dtype == np.uint8 and labels.shape == masks.shape
    assert set(np.unique(labels)) <= {0, 1} and (labels <= masks).all() and labels.sum() > 0.8 * masks.sum()
    outside = frames.max(axis=0) == 0  # outside the fan every frame is blank, and the fan is the same in all
    assert outside[0, 0] and outside[0, -1] and not outside[80, 64]
    assert (frames[:, outside] == 0).all()
    # the same acquisition: every frame's cavity is dark against its tissue
    for f, m in zip(frames, labels, strict=True):
        tissue = (~m.astype(bool)) & ~outside
        assert f[m.astype(bool)].mean() < f[tissue].mean()


def _basal_rows(lv: np.ndarray) -> tuple[int, np.ndarray]:
    cavity = lv.astype(bool)
    base = int(np.flatnonzero(cavity.any(axis=1)).max())
    return base, np.flatnonzero(cavity[base - 3])


def _dark_below_plane(echo: np.ndarray, base: int) -> int:
    """Pixels of blood (echogenicity < 0.15) one row across the mitral plane."""
    return int((echo[base + 6] < 0.15).sum())


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_an_unmarked_mitral_plane_has_faint_knots_and_no_atrial_waist(lv: np.ndarray, seed: int) -> None:
    """Early filling: the annulus knots and leaflets fade and the atrium is as wide as the base, so
    the only cue left is where the myocardium ends (the segmenter must not follow the blood)."""
    marked = echogenicity_map(lv, SPACING, np.random.default_rng(seed), "A4C", unmarked_plane=False)
    unmarked = echogenicity_map(lv, SPACING, np.random.default_rng(seed), "A4C", unmarked_plane=True)
    base, cols = _basal_rows(lv)
    knots = (slice(base - 4, base + 5), slice(cols.min() - 4, cols.max() + 5))
    assert unmarked[knots].max() < 0.6 * marked[knots].max()
    dark_unmarked, dark_marked = _dark_below_plane(unmarked, base), _dark_below_plane(marked, base)
    assert dark_unmarked >= 0.9 * cols.size  # the atrium spans the whole basal width
    assert dark_unmarked > dark_marked or dark_marked >= 0.9 * cols.size


def test_some_scenes_have_an_unmarked_plane_and_the_draw_keeps_the_stream(lv: np.ndarray) -> None:
    from models.cohort.echo_scene import UNMARKED_PLANE_FRACTION

    assert 0.2 <= UNMARKED_PLANE_FRACTION <= 0.5
    drawn = echogenicity_map(lv, SPACING, np.random.default_rng(21), "A2C")
    forced = [echogenicity_map(lv, SPACING, np.random.default_rng(21), "A2C", unmarked_plane=u) for u in (False, True)]
    assert any(np.array_equal(drawn, f) for f in forced)  # forcing replaces the draw, it does not shift the stream
