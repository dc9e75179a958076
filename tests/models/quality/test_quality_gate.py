"""The quality gate: signals, the badness scale, levels with reasons, and the study/result wiring."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.quality import ingest_signals
from models.quality.gate import THRESHOLDS, Threshold, ViewEvidence, assess
from models.quality.signals import (
    area_roughness,
    fractional_area_change,
    long_axis_change,
    long_axis_length_mm,
    max_area_jump,
    segmentation_confidence,
)


def ellipse_masks(radii_rows: np.ndarray, radius_cols: float = 12.0, shape: tuple[int, int] = (128, 64)) -> np.ndarray:
    """(T, H, W) uint8 ellipses hanging from row 8 (apex at the top), long axis along the rows; the short
    axis contracts with the square of the long axis (a ventricle narrows more than it shortens)."""
    rr, cc = np.mgrid[: shape[0], : shape[1]]
    top = float(np.max(radii_rows))
    out = [((rr - 8 - r) / r) ** 2 + ((cc - shape[1] / 2) / (radius_cols * (r / top) ** 2)) ** 2 <= 1.0
           for r in radii_rows]
    return np.stack(out).astype(np.uint8)


BEATING = 36.0 - 3.0 * (1 - np.cos(2 * np.pi * np.arange(20) / 20))  # smooth cycle, 20 frames, 17 % shortening


@pytest.mark.parametrize(("threshold", "value", "badness"), [
    (Threshold(0.1, 0.2, True), 0.0, 0.0), (Threshold(0.1, 0.2, True), 0.05, 0.5),
    (Threshold(0.1, 0.2, True), 0.1, 1.0), (Threshold(0.1, 0.2, True), 0.2, 2.0),
    (Threshold(0.1, 0.2, True), 0.3, 3.0), (Threshold(0.9, 0.8, False, best=1.0), 1.0, 0.0),
    (Threshold(0.9, 0.8, False, best=1.0), 0.85, 1.5), (Threshold(0.9, 0.8, False, best=1.0), float("nan"), 2.0),
])
def test_badness_is_1_at_review_and_2_at_unreliable(threshold: Threshold, value: float, badness: float):
    assert threshold.badness(value) == pytest.approx(badness)


@pytest.mark.parametrize(("lengths", "change"), [((40, 36, 34, 38), 0.15), ((40, 60, 40), 1 / 3), ((40,), 0.0),
                                                 ((40, 0, 30), 0.25)])
def test_long_axis_change_over_the_frames_that_hold_a_cavity(lengths: tuple[int, ...], change: float):
    masks = np.zeros((len(lengths), 70, 10), np.uint8)
    for t, n in enumerate(lengths):
        masks[t, 2 : 2 + n, 3:7] = 1
    assert long_axis_change(masks, (1.0, 1.0)) == pytest.approx(change, abs=0.02)


def test_signals_on_known_curves():
    smooth = 30.0 + 8.0 * np.cos(2 * np.pi * np.arange(20) / 20)
    assert area_roughness(smooth) < 0.03
    assert area_roughness(np.array([30.0, 10.0, 24.0])) == pytest.approx(17 / 24)  # the 30 → 10 → 24 cm²
    assert max_area_jump(np.array([30.0, 10.0, 24.0])) == pytest.approx(20 / 24)
    assert area_roughness(np.array([5.0, 6.0])) == 0.0
    assert fractional_area_change(np.array([40.0, 20.0, 30.0])) == pytest.approx(0.5)
    mask = np.zeros((50, 20), np.uint8)
    mask[5:45, 8:12] = 1
    assert long_axis_length_mm(mask, (0.5, 0.5)) == pytest.approx(39 * 0.5)


def test_confidence_is_the_margin_over_the_candidate_region():
    p = np.zeros((2, 10, 10), np.float32)
    p[0, :5] = 1.0  # sure cavity
    p[1, :5] = 0.6  # hesitant cavity
    p[1, 5:7] = 0.2  # fuzzy rim
    assert segmentation_confidence(p[:1]) == pytest.approx(1.0)
    assert segmentation_confidence(p[1:]) == pytest.approx((50 * 0.2 + 20 * 0.6) / 70)
    assert segmentation_confidence(np.zeros((1, 4, 4))) == 0.0  # nothing found
    with pytest.raises(ValueError):
        segmentation_confidence(np.zeros((4, 4)))


def _evidence(view: str = "A4C", radii: np.ndarray = BEATING, confidence: float | None = None,
              dice: float = 0.95, foreshortening: float | None = None, fac_spread: float | None = None) -> ViewEvidence:
    return ViewEvidence.from_masks(view, ellipse_masks(radii), (0.5, 0.5), confidence, dice, dice, foreshortening,
                                   fac_spread)


def test_two_consistent_views_are_good():
    q = assess([_evidence("A4C"), _evidence("A2C")], 120.0, 50.0, 58.3)
    assert q["level"] == "good" and q["reasons"] == [] and q["score"] < 1.0
    assert q["views"]["A4C"]["mask_source"] == "masks supplied"
    assert q["agreement"]["fac_disagreement"] == pytest.approx(0.0)


@pytest.mark.parametrize(("evidence", "volumes", "level", "needle"), [
    ([_evidence("A4C", np.r_[BEATING[:5], 12.0, BEATING[6:]]), _evidence("A2C")], (120, 50, 58), "unreliable",
     "area-curve roughness"),
    ([_evidence("A4C", confidence=0.7), _evidence("A2C", confidence=0.95)], (120, 50, 58), "review",
     "segmentation confidence"),
    ([_evidence("A4C", dice=0.85), _evidence("A2C")], (120, 50, 58), "review", "seen-view Dice"),
    ([_evidence("A4C", foreshortening=32.0), _evidence("A2C")], (120, 50, 58), "unreliable", "foreshortening"),
    ([_evidence("A4C", fac_spread=0.07), _evidence("A2C", fac_spread=0.01)], (120, 50, 58), "review",
     "another gain or resolution"),
    ([_evidence("A4C"), _evidence("A2C", BEATING * 0.7)], (120, 50, 58), "unreliable", "ED long-axis length"),
    ([_evidence("A4C"), _evidence("A2C", 36.0 - 0.4 * (36 - BEATING))], (120, 50, 58), "review",
     "fractional area change"),
    ([_evidence("A4C", np.r_[BEATING[:8], BEATING[8:13] * 1.5, BEATING[13:]]), _evidence("A2C")],
     (120, 50, 58), "unreliable", "change of the long-axis length"),  # into the atrium for 5 frames
    ([_evidence("A4C"), _evidence("A2C")], (120, 115, 4.2), "unreliable", "outside the plausible"),
    ([_evidence("A4C"), _evidence("A2C")], (50, 60, -20.0), "unreliable", "is not larger than ESV"),
    ([_evidence("A4C")], (120, 50, 58), "review", "one view only"),
])
def test_each_signal_can_lower_the_level_and_says_why(evidence: list[ViewEvidence], volumes: tuple[float, ...],
                                                      level: str, needle: str):
    q = assess(evidence, *volumes)
    assert q["level"] == level, q
    assert any(needle in r for r in q["reasons"]), q["reasons"]
    assert q["score"] >= (2.0 if level == "unreliable" else 1.0)


@pytest.mark.parametrize(("gap_in_review_limits", "level"), [(0.5, "good"), (1.5, "review"), (2.5, "unreliable")])
def test_ef_far_from_simpsons_on_the_same_masks_is_flagged(gap_in_review_limits: float, level: str):
    review = THRESHOLDS["simpson_ef_disagreement"].review
    simpson = 58.0 - gap_in_review_limits * review
    q = assess([_evidence("A4C"), _evidence("A2C")], 120.0, 50.0, 58.0, simpson)
    assert q["agreement"]["simpson_ef_disagreement"] == pytest.approx(gap_in_review_limits * review)
    assert q["level"] == level
    assert any("Simpson" in r for r in q["reasons"]) == (level != "good")


def test_without_simpson_or_ef_the_agreement_is_not_assessed():
    assert assess([_evidence("A4C"), _evidence("A2C")], 120.0, 50.0, 58.0)["agreement"]["simpson_ef_disagreement"] \
        is None
    assert assess([_evidence("A4C"), _evidence("A2C")], 120.0, None, None, 55.0)["agreement"][
        "simpson_ef_disagreement"] is None


def test_unknown_foreshortening_and_3d_only_are_not_assessed():
    q = assess([_evidence("A4C"), _evidence("A2C")], 120.0, None, None)
    assert q["plausibility"] == {"assessed": False, "ed_greater_than_es": None, "ef_in_range": None}
    assert q["views"]["A4C"]["foreshortening_mm"] is None and q["level"] == "good"


def test_thresholds_are_ordered():
    for t in THRESHOLDS.values():
        assert (t.unreliable > t.review) == t.higher_is_worse
        assert not math.isnan(t.badness(t.best))


def test_ingest_signals_skip_unused_sources_and_supplied_masks():
    meta = {"ingest": {"sources": [{"view": "A4C", "used": True, "segmentation_confidence": 0.91},
                                   {"view": "A2C", "used": False, "segmentation_confidence": 0.2},
                                   {"view": "A3C", "used": True, "segmenter": None}]}}
    assert ingest_signals(meta) == {"A4C": 0.91}
    meta["ingest"]["sources"][0]["segmentation_fac_spread"] = 0.03
    assert ingest_signals(meta, "segmentation_fac_spread") == {"A4C": 0.03}
    assert ingest_signals({}) == {}
