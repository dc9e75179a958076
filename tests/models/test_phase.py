"""ED/ES detection and phase alignment on clips with known ED/ES, frame rates and beat counts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from models.errors import ErrorCode, InputError
from models.phase import align_study, analyse_cycle, detect_ed_es, lv_areas, output_phases
from models.study import Study, ViewSequence

REAL = Path(__file__).resolve().parents[2] / "../shared/data/real-echo/segmentation_reference.nii.gz"


def _contraction(t: np.ndarray, cycle_s: float, alpha: float, ed_time_s: float) -> np.ndarray:
    """0 at ED (t = ed_time + k·cycle), 1 at ES (α of a cycle later), EchoVDiff-warped cosine."""
    tau = np.mod(t - ed_time_s, cycle_s) / cycle_s
    phase = np.where(tau <= alpha, math.pi * tau / alpha, math.pi * ((tau - alpha) / (1 - alpha) + 1))
    return np.asarray((1 - np.cos(phase)) / 2)


def _areas(n: int, fps: float, cycle_s: float = 0.9, alpha: float = 0.35, ed_time_s: float = 0.0) -> np.ndarray:
    return 1000.0 * (1 - 0.3 * _contraction(np.arange(n) / fps, cycle_s, alpha, ed_time_s))


def _cine(n: int, fps: float, cycle_s: float, ed_time_s: float, alpha: float = 0.35,
          shape: tuple[int, int] = (48, 40)) -> np.ndarray:
    h, w = shape
    rr, cc = np.mgrid[0:h, 0:w].astype(float)
    c = _contraction(np.arange(n) / fps, cycle_s, alpha, ed_time_s)
    out = np.zeros((n, h, w), np.uint8)
    for k in range(n):
        s = 1 - 0.3 * c[k]
        a, b = 0.4 * h * s, 0.3 * w * math.sqrt(s)
        out[k] = ((rr - 2 - a) / a) ** 2 + ((cc - w / 2) / b) ** 2 <= 1
    return out


def _truth(fps: float, cycle_s: float, alpha: float, ed_time_s: float) -> tuple[int, int]:
    return round(ed_time_s * fps), round((ed_time_s + alpha * cycle_s) * fps)


@pytest.mark.parametrize(("fps", "n", "ed_time_s"), [(30, 40, 0.2), (50, 70, 0.5), (80, 100, 0.1), (25, 30, 0.0)])
def test_detects_ed_es_of_a_single_beat(fps: float, n: int, ed_time_s: float) -> None:
    ed, es, (start, stop) = detect_ed_es(_areas(n, fps, ed_time_s=ed_time_s), fps)
    true_ed, true_es = _truth(fps, 0.9, 0.35, ed_time_s)
    assert abs(ed - true_ed) <= 1 and abs(es - true_es) <= 1
    assert start == ed and abs(stop - (true_ed + round(0.9 * fps))) <= 1


@pytest.mark.parametrize("seed", range(4))
def test_robust_to_noise_and_several_beats(seed: int) -> None:
    fps, cycle = 50.0, 0.8
    rng = np.random.default_rng(seed)
    areas = _areas(200, fps, cycle_s=cycle, ed_time_s=0.3) * (1 + rng.normal(0, 0.015, 200))  # 4 s: 4+ beats
    c = analyse_cycle(areas, fps)
    assert c.complete and c.next_ed is not None
    eds = {round((0.3 + k * cycle) * fps) for k in range(6)}
    assert min(abs(c.ed - e) for e in eds) <= 2 and min(abs(c.next_ed - e) for e in eds) <= 2
    assert abs((c.next_ed - c.ed) - cycle * fps) <= 3  # one beat, not two
    assert abs(c.es - (c.ed + 0.35 * cycle * fps)) <= 3


def test_prefers_the_beat_with_the_largest_swing() -> None:
    fps = 40.0
    areas = _areas(160, fps, cycle_s=1.0, ed_time_s=0.2)  # EDs at frames 8, 48, 88, 128
    for weak in (slice(0, 48), slice(88, 160)):
        areas[weak] = 1000 - (1000 - areas[weak]) * 0.5  # these beats contract half as much
    c = analyse_cycle(areas, fps)
    assert c.next_ed is not None
    assert abs(c.ed - 48) <= 1 and abs(c.next_ed - 88) <= 1 and abs(c.es - 62) <= 1


def test_partial_beat_is_reported_incomplete() -> None:
    fps = 30.0
    c = analyse_cycle(_areas(20, fps, cycle_s=1.0, ed_time_s=0.1), fps)  # ED at 3, ES at ~13.5, no 2nd ED
    assert not c.complete and c.next_ed is None
    assert c.ed == 3 and abs(c.es - 13.5) <= 1


def test_flat_curve_has_no_cycle() -> None:
    with pytest.raises(InputError) as err:
        detect_ed_es(np.full(30, 500.0) + np.random.default_rng(0).normal(0, 1, 30), 30.0)
    assert err.value.code == ErrorCode.NO_CARDIAC_CYCLE


def test_output_phase_axis_is_asymmetric() -> None:
    phases, k_es = output_phases(30, 1 / 3)
    assert k_es == 10 and phases[0] == 0 and phases[k_es] == pytest.approx(math.pi)
    assert np.all(np.diff(phases) > 0) and phases[-1] < 2 * math.pi
    assert np.diff(phases[: k_es + 1]) == pytest.approx(np.full(k_es, math.pi / 10))  # systole: 1/3 of frames


@pytest.mark.parametrize("interpolation", ["nearest", "shape"])
def test_align_views_with_different_fps_lengths_and_offsets(interpolation: str) -> None:
    specs = {"A4C": (30.0, 45, 0.9, 0.25), "A2C": (55.0, 70, 1.0, 0.6), "A3C": (21.0, 24, 0.95, 0.0)}
    study = Study({v: ViewSequence(v, _cine(n, fps, cyc, off), (0.5, 0.5), fps) for v, (fps, n, cyc, off) in
                   specs.items()}, {"ingest": {"kept": True}})
    aligned = align_study(study, n_frames=24, interpolation=interpolation)  # type: ignore[arg-type]
    meta = aligned.meta["phase"]
    assert aligned.meta["ingest"] == {"kept": True}
    k_es = meta["es_frame"]
    assert k_es == round(meta["systolic_fraction"] * 24)
    assert meta["systolic_fraction"] == pytest.approx(0.35, abs=0.05)
    for name, (fps, _, cyc, off) in specs.items():
        v = aligned.views[name]
        assert v.masks.shape[0] == 24 and v.masks.shape[1:] == study.views[name].masks.shape[1:]
        areas = lv_areas(v.masks)
        assert int(np.argmax(areas)) in (0, 1, 23)  # output starts at ED ...
        assert abs(int(np.argmin(areas)) - k_es) <= 1  # ... and ES sits at the common ES frame
        true_ed, true_es = _truth(fps, cyc, 0.35, off)
        assert abs(meta["views"][name]["ed_frame"] - true_ed) <= 1
        assert abs(meta["views"][name]["es_frame"] - true_es) <= 1
        np.testing.assert_array_equal(v.masks[0], study.views[name].masks[meta["views"][name]["ed_frame"]])
    assert aligned.views["A4C"].fps == pytest.approx(24 / meta["cycle_s"], rel=1e-3)
    assert len(meta["frame_phase_rad"]) == 24


def test_nearest_uses_only_observed_frames_and_partial_clips_warn() -> None:
    fps = 30.0
    masks = _cine(20, fps, 1.0, 0.1)  # ED → ES → part of diastole only
    aligned = align_study(Study({"A4C": ViewSequence("A4C", masks, (0.5, 0.5), fps)}), 12, interpolation="nearest")
    view = aligned.meta["phase"]["views"]["A4C"]
    assert not view["complete_beat"] and view["coverage"] < 1
    assert any("covers" in w for w in aligned.meta["phase"]["warnings"])
    for k, src in enumerate(view["source_frames"]):
        np.testing.assert_array_equal(aligned.views["A4C"].masks[k], masks[src])


def test_real_reference_masks_phase() -> None:
    if not REAL.is_file():
        pytest.skip(f"real reference masks not available ({REAL}): /work/shared is absent")
    from models.ingest import load_any

    study = load_any([REAL], {"view": "A4C", "fps": 25})
    aligned = align_study(study)
    view = aligned.meta["phase"]["views"]["A4C"]
    assert (view["ed_frame"], view["es_frame"], view["next_ed_frame"]) == (0, 10, 24)  # see the data's NOTICE
    assert aligned.views["A4C"].n_frames == 24
