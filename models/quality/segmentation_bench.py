"""Do the segmenter's quality signals see a biased segmentation? (``echo4d bench quality --segmentation-only``)

The reconstruction bench (:mod:`models.quality.bench`) needs a full 4D fit per case; most of its
bad B-mode cases were bad because the *segmentation* was biased, which is cheap to measure
directly. For each frozen-test-split case and view, a synthetic B-mode cine of the true masks
(``classic``: :func:`models.cohort.bmode.synthesize_bmode_clip`; ``physics``:
:func:`models.cohort.echo_clip.physics_bmode_clip`) goes through the product path
(:func:`models.ingest.ingest` with the segmenter), and the 2-D error that drives EF error is
compared with the signals:

    FAC error = |FAC(segmenter masks) − FAC(true masks)|      (FAC = (max A − min A) / max A)

"bad" views have a FAC error above 0.05 (≈ 5 EF points), "good" ones below 0.02. Reported per
signal: AUC (bad ranked above good), and how many bad / good views its review limit flags.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Final

import numpy as np

from models.quality.bench import BENCH_VIEWS, auc
from models.quality.gate import THRESHOLDS
from models.quality.signals import area_curve, area_roughness, long_axis_change
from models.quality.stability import mask_fac
from models.segment.protocol import Segmenter

SIMULATORS: Final[tuple[str, ...]] = ("classic", "physics")
GOOD_FAC_ERROR: Final = 0.02
BAD_FAC_ERROR: Final = 0.05
SIGNALS: Final[dict[str, str]] = {
    "segmentation_fac_spread": "segmentation_fac_spread",
    "segmentation_confidence": "segmentation_confidence",
    "area_roughness": "area_roughness",
    "long_axis_change": "long_axis_change",
}
"""Signal name in a row → its threshold in :data:`models.quality.gate.THRESHOLDS`."""


def _cines(truth: Any, simulator: str, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """View → (B-mode cine (T, H, W) uint8, the true masks it shows (T, H, W))."""
    out = {}
    for v in BENCH_VIEWS:
        masks = truth.masks_clean[v]
        if simulator == "physics":
            from models.cohort.echo_clip import physics_bmode_clip

            out[v] = physics_bmode_clip(masks, v, truth.spacing_mm, rng)
        else:
            from models.cohort.bmode import synthesize_bmode_clip

            out[v] = (synthesize_bmode_clip(masks, rng, truth.spacing_mm), masks)
    return out


def segmentation_rows(seed: int, simulator: str, segmenter: Segmenter, n_frames: int = 20) -> list[dict[str, Any]]:
    """One row per view of case ``seed``: FAC error of the segmenter's masks and the segmenter signals."""
    from models.bench.accuracy import cohort_truth
    from models.ingest import ingest

    truth = cohort_truth(seed, n_frames)
    rng = np.random.default_rng([seed, 7303, SIMULATORS.index(simulator)])
    cines = _cines(truth, simulator, rng)
    with tempfile.TemporaryDirectory(prefix="echo4d-segbench-") as tmp:
        paths = []
        for v, (frames, _) in cines.items():
            paths.append(Path(tmp) / f"{v}.npy")
            np.save(paths[-1], frames)
        manifest = {"kind": "images", "pixel_spacing_mm": list(truth.spacing_mm), "fps": truth.fps,
                    "files": {f"{v}.npy": {"view": v} for v in cines}}
        study = ingest(paths, manifest, segmenter=segmenter).study
    sources = {s["view"]: s for s in study.meta["ingest"]["sources"] if s.get("used", True)}
    rows = []
    for v, (_, true_masks) in cines.items():
        masks, spacing = study.views[v].masks, study.views[v].pixel_spacing_mm
        rows.append({"simulator": simulator, "case": truth.name, "view": v,
                     "fac_true": mask_fac(true_masks), "fac_segmented": mask_fac(masks),
                     "fac_error": abs(mask_fac(masks) - mask_fac(true_masks)),
                     "segmentation_fac_spread": sources[v].get("segmentation_fac_spread"),
                     "segmentation_confidence": sources[v].get("segmentation_confidence"),
                     "area_roughness": area_roughness(area_curve(masks, spacing)),
                     "long_axis_change": long_axis_change(masks, spacing)})
    return rows


def _badness(signal: str, row: dict[str, Any]) -> float:
    return THRESHOLDS[SIGNALS[signal]].badness(float(row[signal]))


def _worst(row: dict[str, Any]) -> float:
    return max(_badness(s, row) for s in SIGNALS)


def summarise_segmentation(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per simulator and over both: per signal the AUC of its badness (bad views above good ones) and
    the views its review limit flags; plus the same for the worst of the signals (what the gate does)."""
    out: dict[str, Any] = {}
    for name in (*SIMULATORS, "all"):
        sel = [r for r in rows if name == "all" or r["simulator"] == name]
        if not sel:
            continue
        bad = [r for r in sel if r["fac_error"] > BAD_FAC_ERROR]
        good = [r for r in sel if r["fac_error"] < GOOD_FAC_ERROR]
        scorers: dict[str, Callable[[dict[str, Any]], float]] = {s: partial(_badness, s) for s in SIGNALS}
        scorers["worst"] = _worst
        out[name] = {"n": len(sel), "n_bad": len(bad), "n_good": len(good),
                     "median_fac_error": float(np.median([r["fac_error"] for r in sel])),
                     "signals": {s: {"auc": auc([f(r) for r in bad], [f(r) for r in good]),
                                     "bad_flagged": sum(f(r) >= 1.0 for r in bad),
                                     "good_flagged": sum(f(r) >= 1.0 for r in good)}
                                 for s, f in scorers.items()}}
    return out


def segmentation_markdown(doc: dict[str, Any]) -> str:
    """The results table for docs/results.md."""
    lines = ["| simulator | views | bad / good (FAC err > 0.05 / < 0.02) | median FAC err | signal | AUC | "
             "bad flagged | good flagged |", "|---|---|---|---|---|---|---|---|"]
    for name, s in doc["summary"].items():
        for sig, m in s["signals"].items():
            a = "n/a" if m["auc"] is None else f"{m['auc']:.3f}"
            lines.append(f"| {name} | {s['n']} | {s['n_bad']} / {s['n_good']} | {s['median_fac_error']:.3f} | {sig} "
                         f"| {a} | {m['bad_flagged']}/{s['n_bad']} | {m['good_flagged']}/{s['n_good']} |")
    return "\n".join(lines) + "\n"
