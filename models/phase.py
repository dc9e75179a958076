"""Cardiac phase: ED/ES from the LV area curve, and alignment of all views on one phase axis.

Detection (per view): the LV area curve is smoothed with a Gaussian of 25 ms (at least half
a frame); end-diastole (ED) candidates are area maxima with a prominence of at least a
quarter of the area range and at least 0.3 s apart (the curve is padded with its minimum, so a
peak close to a clip end is not penalised for what the clip did not record; a clip end itself
counts when it lies in the top fifth of the range). Consecutive EDs bound complete beats; end-systole
(ES) is the area minimum inside a beat. When the clip holds several beats, the one with the
largest area swing wins (interior beats preferred over beats that use a clip end, beats with
an implausible systolic fraction penalised). A clip without two EDs gives a partial beat:
ED = the area maximum, ES = the deepest minimum after it (else before it).

Phase axis (EchoVDiff's warping, paper 004): ED = 0, ES = π, next ED = 2π. The output
frames are uniform in time within systole and within diastole, with the ES frame at
``round(α·T)``, α the study's systolic fraction (median of the views' complete beats,
else 1/3), so output frame k has phase π·k/k_es in systole and π·(1 + (k−k_es)/(T−k_es))
in diastole. Each view's frames get phases by linear interpolation between its own ED/ES/ED
(clips are not simultaneous and differ in length and frame rate); a partial beat is
extrapolated with durations implied by α. Masks at an output phase are either the nearest
source frame (``"nearest"``) or a shape-based interpolation of the two source frames around
it (``"shape"``: linear blend of signed distance maps, then threshold; default).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, signal

from models.errors import ErrorCode, InputError
from models.study import Study, ViewSequence

DEFAULT_SYSTOLIC_FRACTION: Final = 1.0 / 3.0
SMOOTH_S: Final = 0.025
MIN_BEAT_S: Final = 0.3
MIN_RELATIVE_SWING: Final = 0.02
PROMINENCE: Final = 0.25
END_LEVEL: Final = 0.8
PLAUSIBLE_SYSTOLE: Final = (0.15, 0.7)
PHASE_FORMAT: Final = "echo4d-phase/1"

Interpolation = Literal["nearest", "shape"]


@dataclass(frozen=True)
class CycleDetection:
    """ED/ES of one view. ``beat_range`` = [start, stop) frames of the beat used (stop = next ED when complete)."""

    ed: int
    es: int
    beat_range: tuple[int, int]
    complete: bool
    next_ed: int | None
    smoothed: NDArray[np.float64]

    @property
    def systolic_fraction(self) -> float | None:
        if self.next_ed is None:
            return None
        return (self.es - self.ed) / (self.next_ed - self.ed)


def lv_areas(masks: NDArray[Any]) -> NDArray[np.float64]:
    """LV cavity area (T,) in pixels of masks (T, H, W)."""
    out: NDArray[np.float64] = np.asarray(masks, dtype=bool).reshape(masks.shape[0], -1).sum(axis=1).astype(np.float64)
    return out


def smooth_areas(areas: NDArray[Any], fps: float) -> NDArray[np.float64]:
    """Gaussian smoothing (σ = 25 ms, at least half a frame) of an area curve (T,)."""
    a = np.asarray(areas, dtype=np.float64)
    out: NDArray[np.float64] = np.asarray(ndimage.gaussian_filter1d(a, max(0.5, SMOOTH_S * fps), mode="nearest"),
                                          dtype=np.float64)
    return out


def _ed_candidates(s: NDArray[np.float64], rng: float, gap: int) -> list[int]:
    """Area maxima with prominence ≥ PROMINENCE·range; the clip is padded with its minimum on both sides so
    a peak near an end is not penalised for the part of the curve the clip did not record. A clip end
    itself counts only when it is near the top of the range (≥ END_LEVEL)."""
    lo = float(s.min())
    padded = np.concatenate([[lo], s, [lo]])
    found = signal.find_peaks(padded, prominence=PROMINENCE * rng, distance=gap)[0] - 1
    return [int(p) for p in found if 0 < p < len(s) - 1 or s[p] >= lo + END_LEVEL * rng]


def analyse_cycle(areas: NDArray[Any], fps: float) -> CycleDetection:
    """Detect ED, ES and one beat in an LV area curve (T,) sampled at ``fps``; see the module docstring."""
    a = np.asarray(areas, dtype=np.float64)
    if a.ndim != 1 or len(a) < 3 or not np.all(np.isfinite(a)):
        raise InputError(f"an area curve of {a.size} frame(s) cannot show a cardiac cycle (3 needed)",
                         code=ErrorCode.NO_CARDIAC_CYCLE, field="masks")
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"frame rate {fps!r} is not positive", code=ErrorCode.BAD_TIMING, field="fps")
    s = smooth_areas(a, fps)
    rng = float(s.max() - s.min())
    if rng < MIN_RELATIVE_SWING * max(float(s.max()), 1.0):
        raise InputError(f"the LV area changes by less than {MIN_RELATIVE_SWING:.0%} over the clip: no contraction "
                         "is visible, so ED and ES cannot be found", code=ErrorCode.NO_CARDIAC_CYCLE, field="masks")
    eds = _ed_candidates(s, rng, max(2, round(MIN_BEAT_S * fps)))
    best: tuple[float, int, int, int] | None = None
    for e1, e2 in itertools.pairwise(eds):
        es = e1 + int(np.argmin(s[e1 : e2 + 1]))
        swing = min(s[e1], s[e2]) - s[es]
        if swing < PROMINENCE * rng:
            continue
        score = float(swing)
        if e1 == 0 or e2 == len(s) - 1:
            score *= 0.85
        if not PLAUSIBLE_SYSTOLE[0] <= (es - e1) / (e2 - e1) <= PLAUSIBLE_SYSTOLE[1]:
            score *= 0.5
        if best is None or score > best[0] * (1 + 1e-9):
            best = (score, e1, es, e2)
    if best is not None:
        _, e1, es, e2 = best
        return CycleDetection(e1, es, (e1, e2), True, e2, s)
    ed = int(np.argmax(s))
    after = s[ed:]
    if len(after) > 1 and s[ed] - after.min() >= PROMINENCE * rng:
        es = ed + int(np.argmin(after))
        return CycleDetection(ed, es, (ed, len(s)), False, None, s)
    es = int(np.argmin(s[: ed + 1]))
    return CycleDetection(ed, es, (es, ed + 1), False, None, s)


def detect_ed_es(areas: NDArray[Any], fps: float) -> tuple[int, int, tuple[int, int]]:
    """(ed, es, beat_range) of an LV area curve (T,): frame indices, beat_range = [start, stop)."""
    c = analyse_cycle(areas, fps)
    return c.ed, c.es, c.beat_range


def _frame_phases(c: CycleDetection, n: int, alpha: float) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Unwrapped phase (n,) of every source frame and which frames belong to the beat used."""
    t = np.arange(n, dtype=np.float64)
    if c.complete and c.next_ed is not None:
        phases = np.interp(t, [c.ed, c.es, c.next_ed], [0.0, math.pi, 2 * math.pi])
        return phases, (t >= c.ed) & (t <= c.next_ed)
    if c.es > c.ed:  # systole seen: ED → ES (→ part of diastole)
        systole = float(c.es - c.ed)
        diastole = systole * (1 - alpha) / alpha
        points = [(float(c.ed), 0.0), (float(c.es), math.pi)]
    else:  # diastole seen: ES → ED
        diastole = float(max(c.ed - c.es, 1))
        systole = diastole * alpha / (1 - alpha)
        points = [(float(c.es), -math.pi), (float(c.ed), 0.0)]
    (t0, p0), (t1, p1) = points
    rate_before = math.pi / (diastole if p0 == 0.0 else systole)
    rate_after = math.pi / (diastole if p1 == math.pi else systole)
    phases = np.interp(t, [t0, t1], [p0, p1])
    phases = np.where(t < t0, p0 - (t0 - t) * rate_before, phases)
    phases = np.where(t > t1, p1 + (t - t1) * rate_after, phases)
    valid = (phases > p0 - math.pi) & (phases < p1 + math.pi)
    return phases, valid


def output_phases(n_frames: int, alpha: float) -> tuple[NDArray[np.float64], int]:
    """Phase (n_frames,) of each output frame (ED = 0, ES = π at frame k_es) and k_es."""
    k_es = min(max(round(alpha * n_frames), 1), n_frames - 1)
    k = np.arange(n_frames, dtype=np.float64)
    phases = np.where(k <= k_es, math.pi * k / k_es, math.pi * (1 + (k - k_es) / (n_frames - k_es)))
    return phases, k_es


def _signed_distance(mask: NDArray[np.uint8]) -> NDArray[np.float64]:
    inside = mask.astype(bool)
    out: NDArray[np.float64] = ndimage.distance_transform_edt(~inside) - ndimage.distance_transform_edt(inside)
    return out


@dataclass
class _Resampled:
    masks: NDArray[np.uint8]
    nearest: list[int]
    coverage: float


def _resample_view(masks: NDArray[np.uint8], phases: NDArray[np.float64], valid: NDArray[np.bool_],
                   targets: NDArray[np.float64], how: Interpolation) -> _Resampled:
    idx = np.flatnonzero(valid)
    ph = phases[idx]
    order = np.argsort(ph, kind="stable")
    idx, ph = idx[order], ph[order]
    sdf_cache: dict[int, NDArray[np.float64]] = {}
    out = np.zeros((len(targets), *masks.shape[1:]), dtype=np.uint8)
    nearest: list[int] = []
    covered = 0
    for k, target in enumerate(targets):
        shifted = [target + m * 2 * math.pi for m in (0, -1, 1)]
        inside = [x for x in shifted if ph[0] <= x <= ph[-1]]
        if inside:
            covered += 1
            x = inside[0]
            j = min(int(np.searchsorted(ph, x, side="right")) - 1, len(ph) - 2) if len(ph) > 1 else 0
            j = max(j, 0)
            lo, hi = (int(idx[j]), int(idx[min(j + 1, len(idx) - 1)]))
            span = ph[min(j + 1, len(ph) - 1)] - ph[j]
            w = 0.0 if span <= 0 else float((x - ph[j]) / span)
            near = lo if w <= 0.5 else hi
        else:
            dist = np.abs(np.angle(np.exp(1j * (ph - target))))
            near = lo = hi = int(idx[int(np.argmin(dist))])
            w = 0.0
        nearest.append(near)
        if how == "nearest" or lo == hi or w <= 0.0 or w >= 1.0:
            out[k] = masks[near if how == "nearest" else (lo if w < 1.0 else hi)]
            continue
        for j2 in (lo, hi):
            if j2 not in sdf_cache:
                sdf_cache[j2] = _signed_distance(masks[j2])
        blend = (1 - w) * sdf_cache[lo] + w * sdf_cache[hi]
        frame = (blend < 0).astype(np.uint8)
        out[k] = frame if frame.any() else masks[near]
    return _Resampled(out, nearest, covered / len(targets))


def align_study(study: Study, n_frames: int | None = None, *, interpolation: Interpolation = "shape") -> Study:
    """Resample every view to ``n_frames`` frames of one cardiac cycle starting at ED (see module docstring).

    ``n_frames`` = None uses the largest number of frames any view has in one cycle. Returns a
    new Study (same spacing per view, common fps = n_frames / median cycle length) whose
    ``meta["phase"]`` records each view's detected ED/ES, its beat and coverage, and the phase
    (radians) of every output frame.
    """
    if not study.views:
        raise InputError("the study has no view to align", code=ErrorCode.MISSING_VIEW, field="views")
    detections = {name: analyse_cycle(lv_areas(v.masks), v.fps) for name, v in study.views.items()}
    fractions = [f for c in detections.values() if (f := c.systolic_fraction) is not None]
    alpha = float(np.clip(np.median(fractions), 0.2, 0.5)) if fractions else DEFAULT_SYSTOLIC_FRACTION
    cycle_frames: dict[str, float] = {}
    for name, c in detections.items():
        if c.next_ed is not None:
            cycle_frames[name] = float(c.next_ed - c.ed)
        elif c.es > c.ed:
            cycle_frames[name] = (c.es - c.ed) / alpha
        else:
            cycle_frames[name] = (c.ed - c.es) / (1 - alpha)
    if n_frames is None:
        n_frames = int(np.clip(round(max(cycle_frames.values())), 4, 512))
    if n_frames < 3:
        raise InputError(f"n_frames must be at least 3, got {n_frames}", code=ErrorCode.BAD_TIMING, field="n_frames")
    cycle_s = float(np.median([cycle_frames[n] / study.views[n].fps for n in detections]))
    targets, k_es = output_phases(n_frames, alpha)
    views: dict[str, ViewSequence] = {}
    per_view: dict[str, Any] = {}
    warnings: list[str] = []
    for name in study.view_names:
        v, c = study.views[name], detections[name]
        phases, valid = _frame_phases(c, v.n_frames, alpha)
        res = _resample_view(v.masks, phases, valid, targets, interpolation)
        views[name] = ViewSequence(name, res.masks, v.pixel_spacing_mm, n_frames / cycle_s)
        if res.coverage < 0.999:
            warnings.append(f"{name}: the clip covers {res.coverage:.0%} of the cardiac cycle; the other output "
                            "frames repeat the nearest observed frame")
        if not c.complete:
            warnings.append(f"{name}: no complete beat (ED→ED) in the clip; the cycle length is estimated")
        per_view[name] = {
            "ed_frame": c.ed, "es_frame": c.es, "next_ed_frame": c.next_ed, "beat": list(c.beat_range),
            "complete_beat": c.complete, "n_frames": v.n_frames, "fps": v.fps,
            "cycle_s": round(cycle_frames[name] / v.fps, 4),
            "systolic_fraction": None if c.systolic_fraction is None else round(c.systolic_fraction, 4),
            "coverage": round(res.coverage, 4), "source_frames": res.nearest,
        }
    meta = dict(study.meta)
    meta["phase"] = {
        "format": PHASE_FORMAT, "method": "lv_area", "interpolation": interpolation, "n_frames": n_frames,
        "es_frame": k_es, "systolic_fraction": round(alpha, 4),
        "systolic_fraction_source": "measured" if fractions else "default",
        "cycle_s": round(cycle_s, 4), "frame_phase_rad": [round(float(p), 6) for p in targets],
        "views": per_view, "warnings": warnings,
    }
    return Study(views, meta)
