"""The quality gate: measured signals + documented thresholds → ``good | review | unreliable``.

Every check maps its signal onto one badness scale where the *review* threshold is 1 and the
*unreliable* threshold is 2 (linear in between and beyond, 0 at the perfect end), so

    score = max over checks of badness;  level = good (score < 1) | review (< 2) | unreliable (≥ 2).

The score is the continuous number behind the level (benchmarks rank cases by it). Nothing sets
the level by hand: it is always computed from the checks below. Thresholds are documented in
docs/report-schema.md (they were set a priori, not tuned on any benchmark).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from models.quality.signals import (
    area_curve,
    area_roughness,
    fractional_area_change,
    long_axis_change,
    long_axis_length_mm,
    max_area_jump,
    max_pairwise_spread,
)

QUALITY_FORMAT: Final = "echo4d-quality/1"
Level = Literal["good", "review", "unreliable"]
LEVELS: Final[tuple[Level, ...]] = ("good", "review", "unreliable")


@dataclass(frozen=True)
class Threshold:
    """``review`` and ``unreliable`` limits of one signal; ``higher_is_worse`` says which way is bad;
    ``best`` is the signal's perfect value (badness 0)."""

    review: float
    unreliable: float
    higher_is_worse: bool
    best: float = 0.0

    def badness(self, value: float) -> float:
        """0 at ``best``, 1 at ``review``, 2 at ``unreliable`` (piecewise linear; NaN → 2)."""
        if not math.isfinite(value):
            return 2.0
        sign = 1.0 if self.higher_is_worse else -1.0
        x, r, u = sign * (value - self.best), sign * (self.review - self.best), sign * (self.unreliable - self.best)
        if x <= r:
            return max(x / r, 0.0)
        return 1.0 + (x - r) / (u - r)


THRESHOLDS: Final[dict[str, Threshold]] = {
    "segmentation_confidence": Threshold(review=0.80, unreliable=0.60, higher_is_worse=False, best=1.0),
    "area_roughness": Threshold(review=0.10, unreliable=0.25, higher_is_worse=True),
    "long_axis_change": Threshold(review=0.30, unreliable=0.45, higher_is_worse=True),
    "fit_dice": Threshold(review=0.90, unreliable=0.80, higher_is_worse=False, best=1.0),
    "foreshortening_mm": Threshold(review=15.0, unreliable=30.0, higher_is_worse=True),
    "segmentation_fac_spread": Threshold(review=0.05, unreliable=0.10, higher_is_worse=True),
    "fac_disagreement": Threshold(review=0.15, unreliable=0.30, higher_is_worse=True),
    "length_disagreement": Threshold(review=0.12, unreliable=0.25, higher_is_worse=True),
    "simpson_ef_disagreement": Threshold(review=4.0, unreliable=8.0, higher_is_worse=True),
}
EF_RANGE_PERCENT: Final = (5.0, 85.0)
SINGLE_VIEW_BADNESS: Final = 1.0
"""A one-view study is at least ``review``: the out-of-plane shape comes from the prior alone."""


@dataclass(frozen=True)
class ViewEvidence:
    """What the gate knows about one view: the area curve (cm², per input frame) and the long-axis
    length at the largest-area frame (mm) of the masks reconstructed from, the segmenter's
    confidence (``None`` when masks were supplied), the fit's seen-view Dice and the estimated
    foreshortening (``None`` when not estimated). Plain data (benchmarks store it as JSON)."""

    view: str
    areas_cm2: list[float]
    length_ed_mm: float
    confidence: float | None
    dice_ed: float | None
    dice_mean: float | None
    foreshortening_mm: float | None = None
    fac_spread: float | None = None
    long_axis_change: float | None = None

    @classmethod
    def from_masks(cls, view: str, masks: NDArray[np.integer], spacing_mm: tuple[float, float],
                   confidence: float | None, dice_ed: float | None, dice_mean: float | None,
                   foreshortening_mm: float | None = None, fac_spread: float | None = None) -> ViewEvidence:
        """Evidence of masks (T, H, W) at ``spacing_mm`` (row, col)."""
        areas = area_curve(masks, spacing_mm)
        length = long_axis_length_mm(np.asarray(masks)[int(np.argmax(areas))], spacing_mm)
        return cls(view, [float(a) for a in areas], length, confidence, dice_ed, dice_mean, foreshortening_mm,
                   fac_spread, long_axis_change(masks, spacing_mm))


def _fmt(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "n/a"


class _Checks:
    """Collects (badness, reason) pairs."""

    def __init__(self) -> None:
        self.badness: list[float] = []
        self.reasons: list[str] = []

    def signal(self, name: str, value: float, where: str, what: str) -> None:
        th = THRESHOLDS[name]
        b = th.badness(value)
        self.badness.append(b)
        if b >= 1.0:
            limit = th.unreliable if b >= 2.0 else th.review
            side = "above" if th.higher_is_worse else "below"
            self.reasons.append(f"{where}: {what} {_fmt(value)} is {side} the "
                                f"{'unreliable' if b >= 2.0 else 'review'} limit {limit:g}")

    def flag(self, badness: float, reason: str) -> None:
        self.badness.append(badness)
        self.reasons.append(reason)


def _view_quality(ev: ViewEvidence, checks: _Checks) -> dict[str, Any]:
    areas = np.asarray(ev.areas_cm2, dtype=np.float64)
    rough, jump = area_roughness(areas), max_area_jump(areas)
    checks.signal("area_roughness", rough, ev.view, "area-curve roughness (second difference / median area)")
    if ev.long_axis_change is not None:
        checks.signal("long_axis_change", ev.long_axis_change, ev.view,
                      "change of the long-axis length over the cycle (1 - shortest / longest; the mask may cross "
                      "the mitral plane or lose the apex)")
    out: dict[str, Any] = {
        "mask_source": "masks supplied" if ev.confidence is None else "segmenter",
        "segmentation_confidence": None if ev.confidence is None else round(float(ev.confidence), 4),
        "area_roughness": round(rough, 4) if math.isfinite(rough) else None,
        "max_area_jump": round(jump, 4) if math.isfinite(jump) else None,
        "area_range_cm2": [round(float(areas.min()), 3), round(float(areas.max()), 3)],
        "fractional_area_change": round(fractional_area_change(areas), 4),
        "length_ed_mm": round(float(ev.length_ed_mm), 2),
        "long_axis_change": None if ev.long_axis_change is None else round(float(ev.long_axis_change), 4),
        "fit_dice_ed": ev.dice_ed,
        "fit_dice_mean": ev.dice_mean,
        "foreshortening_mm": ev.foreshortening_mm,
        "segmentation_fac_spread": ev.fac_spread,
    }
    if ev.confidence is not None:
        checks.signal("segmentation_confidence", ev.confidence, ev.view, "segmentation confidence")
    if ev.fac_spread is not None:
        checks.signal("segmentation_fac_spread", ev.fac_spread, ev.view,
                      "change of the fractional area change when re-segmented at another gain or resolution")
    dices = [d for d in (ev.dice_ed, ev.dice_mean) if d is not None]
    if dices:
        checks.signal("fit_dice", min(dices), ev.view, "seen-view Dice of the fit")
    if ev.foreshortening_mm is not None:
        checks.signal("foreshortening_mm", ev.foreshortening_mm, ev.view, "estimated foreshortening (mm)")
    return out


def _plausibility(edv_ml: float | None, esv_ml: float | None, ef_percent: float | None,
                  checks: _Checks) -> dict[str, Any]:
    if edv_ml is None or esv_ml is None or ef_percent is None or not math.isfinite(ef_percent):
        return {"assessed": False, "ed_greater_than_es": None, "ef_in_range": None}
    ed_gt_es = edv_ml > esv_ml
    lo, hi = EF_RANGE_PERCENT
    in_range = lo <= ef_percent <= hi
    if not ed_gt_es:
        checks.flag(2.0, f"EDV {edv_ml:.1f} mL is not larger than ESV {esv_ml:.1f} mL")
    if not in_range:
        checks.flag(2.0, f"EF {ef_percent:.1f} % is outside the plausible {lo:g}–{hi:g} %")
    return {"assessed": True, "ed_greater_than_es": ed_gt_es, "ef_in_range": in_range}


def assess(views: list[ViewEvidence], edv_ml: float | None, esv_ml: float | None,
           ef_percent: float | None, simpson_ef_percent: float | None = None) -> dict[str, Any]:
    """The ``quality`` block of report.json (level, score, reasons, per-view signals, plausibility).

    ``simpson_ef_percent``: the clinical biplane method of disks on the same masks (None without A4C and A2C
    or without an EF); the gate checks how far the reconstruction's EF is from it."""
    checks = _Checks()
    per_view = {ev.view: _view_quality(ev, checks) for ev in views}
    agreement = {**_agreement(views, checks),
                 "simpson_ef_disagreement": _simpson_agreement(ef_percent, simpson_ef_percent, checks)}
    if len(views) == 1:
        checks.flag(SINGLE_VIEW_BADNESS, f"one view only ({views[0].view}): the out-of-plane shape and the volumes "
                                         "rest on the shape prior")
    plaus = _plausibility(edv_ml, esv_ml, ef_percent, checks)
    score = max(checks.badness, default=0.0)
    level: Level = "good" if score < 1.0 else "review" if score < 2.0 else "unreliable"
    return {"format": QUALITY_FORMAT, "level": level, "score": round(score, 4), "reasons": checks.reasons,
            "views": per_view, "agreement": agreement, "plausibility": plaus}


def _agreement(views: list[ViewEvidence], checks: _Checks) -> dict[str, Any]:
    """Do the views describe one ventricle? Fractional area change and ED long-axis length across views
    (a foreshortened, truncated or mis-segmented view disagrees with the others). Null with one view."""
    if len(views) < 2:
        return {"fac_disagreement": None, "length_disagreement": None}
    fac = max_pairwise_spread([fractional_area_change(np.asarray(v.areas_cm2)) for v in views], relative=False)
    length = max_pairwise_spread([v.length_ed_mm for v in views], relative=True)
    checks.signal("fac_disagreement", fac, "views", "largest difference in fractional area change between views")
    checks.signal("length_disagreement", length, "views", "largest relative difference in ED long-axis length "
                                                          "between views")
    return {"fac_disagreement": round(fac, 4) if math.isfinite(fac) else None,
            "length_disagreement": round(length, 4) if math.isfinite(length) else None}


def _simpson_agreement(ef_percent: float | None, simpson_ef_percent: float | None, checks: _Checks) -> float | None:
    """|EF − Simpson's biplane EF| (points) on the same masks: two methods that read the same masks differently
    say that the 3D fit went somewhere the masks do not support (or that the masks are hard to read)."""
    if ef_percent is None or simpson_ef_percent is None or not math.isfinite(ef_percent) \
            or not math.isfinite(simpson_ef_percent):
        return None
    gap = abs(float(ef_percent) - float(simpson_ef_percent))
    checks.signal("simpson_ef_disagreement", gap, "study", "difference between the EF and Simpson's biplane EF "
                                                           "on the same masks (points)")
    return round(gap, 3)


def thresholds_table() -> dict[str, dict[str, Any]]:
    """The thresholds as plain data (for documentation and tests)."""
    return {name: {"review": t.review, "unreliable": t.unreliable, "higher_is_worse": t.higher_is_worse}
            for name, t in THRESHOLDS.items()}
