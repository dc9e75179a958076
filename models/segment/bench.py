"""Segmenter benchmark: Dice on a synthetic validation split by phase and view, and plausibility
proxies on real cines (no labels there).

Synthetic split: subjects from ``VAL_SEED_OFFSET + 50_000`` on (validation-range seeds no training
run draws: runs use ``VAL_SEED_OFFSET + seed·10 000 + k`` with k < 100), the ED and ES frame in
each apical view (A4C, A2C, A3C) under a random probe perturbation, rendered by the simulator
named (``physics`` or ``classic``). Each frame is segmented on its own (no temporal filter).

Real-cine proxies (from :class:`models.segment.real_check.ClipCheck`): the area curve's jitter
(median |ΔA| between neighbouring frames over the median area), its largest jump, the
fractional area change between the curve's ED and ES, the LV length range and empty frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from models.segment.data import VAL_SEED_OFFSET, DataConfig, subject_samples
from models.segment.protocol import Segmenter

BENCH_SEED_OFFSET: Final = VAL_SEED_OFFSET + 50_000
Sample = tuple[NDArray[np.uint8], NDArray[np.uint8], str, str]


def _subject(seed: int, cfg: DataConfig) -> list[Sample]:
    return subject_samples(seed, cfg, 0, ("ED", "ES"))


def bench_split(n_subjects: int, cfg: DataConfig, workers: int = 1) -> list[Sample]:
    """(image, mask, view, phase) of the ED and ES frames in three views of ``n_subjects`` subjects."""
    seeds = [BENCH_SEED_OFFSET + k for k in range(n_subjects)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            chunks = list(pool.map(_subject, seeds, [cfg] * len(seeds)))
    else:
        chunks = [_subject(s, cfg) for s in seeds]
    return [s for chunk in chunks for s in chunk]


def dice(pred: NDArray[np.uint8], truth: NDArray[np.uint8]) -> float:
    p, t = pred.astype(bool), truth.astype(bool)
    total = int(p.sum() + t.sum())
    return 1.0 if total == 0 else float(2 * (p & t).sum() / total)


def dice_by_group(segmenter: Segmenter, samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """Mean / median / 5th-percentile Dice and count per ``phase/view``, per phase, and ``all``."""
    rows = [(dice(segmenter.segment(img[None])[0], mask), view, phase) for img, mask, view, phase in samples]
    groups: dict[str, list[float]] = {"all": []}
    for d, view, phase in rows:
        for key in ("all", phase, f"{phase}/{view}"):
            groups.setdefault(key, []).append(d)
    return {k: {"mean": float(np.mean(v)), "median": float(np.median(v)), "p05": float(np.percentile(v, 5)),
                "n": float(len(v))} for k, v in sorted(groups.items())}


def area_proxies(check: dict[str, Any], areas_cm2: Sequence[float], lengths_mm: Sequence[float]) -> dict[str, Any]:
    """Plausibility figures of one real clip's segmentation (see the module docstring)."""
    a = np.asarray(areas_cm2, dtype=np.float64)
    med = float(np.median(a)) if a.size else 0.0
    jumps = np.abs(np.diff(a)) if a.size > 1 else np.zeros(1)
    return {
        "area_cm2_min_median_max": check.get("area_cm2_min_median_max"),
        "area_jitter": round(float(np.median(jumps)) / med, 3) if med > 0 else None,
        "area_max_jump_cm2": round(float(jumps.max()), 2),
        "fractional_area_change": check.get("fractional_area_change"),
        "length_mm_min_median_max": check.get("length_mm_min_median_max"),
        "empty_frames": check.get("empty_frames"),
        "ingest_error": check.get("ingest_error"),
    }
