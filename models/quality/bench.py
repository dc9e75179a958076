"""Does the quality gate separate good from bad reconstructions? (``echo4d bench quality``)

Two sets of frozen-test-split cohort cases, reconstructed from the A4C and A2C views:

* ``corrupted``: the clean masks corrupted by :func:`models.cohort.corruption.corrupt_masks`
  at a per-case severity drawn uniformly in [0, 1] (masks supplied: no segmenter confidence);
* ``bmode``: the clean masks turned into B-mode by :func:`models.cohort.bmode.synthesize_bmode_clip`,
  then the product path: ``models.ingest.ingest`` with the segmenter (its confidence recorded);
* ``physics``: the same with the physics-grounded simulator (:func:`models.cohort.echo_clip.physics_bmode_clip`:
  one scanner and one scene per clip, other chambers, dropout), the harder and more realistic set.

For each case: the EF error against the exact truth, Simpson's biplane EF on the same masks, and the
quality block of :func:`models.quality.assess_reconstruction`. The summary asks how well the gate's score (the
number behind ``level``) ranks cases with |EF error| > 5 points above those < 2 points (AUC),
and tabulates level against the error class. Imports torch (through the reconstruction): not
imported by ``models.quality``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from models.errors import Echo4DError
from models.quality import reconstruction_evidence, result_volumes
from models.quality.gate import LEVELS, ViewEvidence, assess
from models.segment.protocol import Segmenter
from models.study import Study, ViewSequence

if TYPE_CHECKING:  # types only: torch comes with the reconstruction, imported when a case runs
    import torch

    from models.prior.model import ShapePrior
    from models.recon.shape_model import ReconPrior

BENCH_VIEWS: Final[tuple[str, ...]] = ("A4C", "A2C")
GOOD_ERROR: Final = 2.0
BAD_ERROR: Final = 5.0
SETS: Final[tuple[str, ...]] = ("corrupted", "bmode", "physics")
BMODE_SETS: Final[tuple[str, ...]] = ("bmode", "physics")


def corrupted_study(truth: Any, seed: int) -> tuple[Study, float]:
    """The case's clean masks corrupted at a severity drawn from ``seed`` (returned with the study)."""
    from models.cohort.corruption import corrupt_masks

    rng = np.random.default_rng([seed, 7301])
    severity = float(rng.uniform(0.0, 1.0))
    views = {v: ViewSequence(v, corrupt_masks(truth.masks_clean[v], rng, severity), truth.spacing_mm, truth.fps)
             for v in BENCH_VIEWS}
    return Study(views), severity


def bmode_study(truth: Any, seed: int, segmenter: Segmenter, simulator: str = "bmode") -> Study:
    """Synthetic B-mode cines of the case's clean masks (``simulator``: ``bmode`` = the classic simulator,
    ``physics`` = the physics-grounded one), ingested with ``segmenter`` (the product path)."""
    from models.cohort.bmode import synthesize_bmode_clip
    from models.cohort.echo_clip import physics_bmode_clip
    from models.ingest import ingest

    rng = np.random.default_rng([seed, 7302 if simulator == "bmode" else 7303])
    with tempfile.TemporaryDirectory(prefix="echo4d-qbench-") as tmp:
        paths = []
        for v in BENCH_VIEWS:
            path = Path(tmp) / f"{v}.npy"
            masks = truth.masks_clean[v]
            clip = synthesize_bmode_clip(masks, rng, truth.spacing_mm) if simulator == "bmode" \
                else physics_bmode_clip(masks, v, truth.spacing_mm, rng)[0]
            np.save(path, clip)
            paths.append(path)
        manifest = {"kind": "images", "pixel_spacing_mm": list(truth.spacing_mm), "fps": truth.fps,
                    "files": {f"{v}.npy": {"view": v} for v in BENCH_VIEWS}}
        study: Study = ingest(paths, manifest, segmenter=segmenter).study
    return study


def evaluate(kind: str, seed: int, prior: ShapePrior | ReconPrior, device: torch.device, segmenter: Segmenter | None,
             profile: str = "default", n_frames: int = 20) -> dict[str, Any]:
    """One case of set ``kind`` (see :data:`SETS`): reconstruct, score EF against the truth, assess quality."""
    from models.bench.accuracy import cohort_truth
    from models.export.simpson_values import simpson_biplane
    from models.recon.pipeline import ReconConfig, reconstruct_study

    truth = cohort_truth(seed, n_frames)
    row: dict[str, Any] = {"set": kind, "case": truth.name}
    start = time.perf_counter()
    try:
        if kind == "corrupted":
            study, row["severity"] = corrupted_study(truth, seed)
        else:
            if segmenter is None:
                raise ValueError(f"the {kind} set needs a segmenter")
            study = bmode_study(truth, seed, segmenter, kind)
        result = reconstruct_study(study, prior, ReconConfig.from_profile(profile), device)
    except Echo4DError as exc:  # a case the product refuses (e.g. an empty segmentation) is reported, not hidden
        row.update({"error": f"{type(exc).__name__}: {exc}"[:300], "seconds": time.perf_counter() - start})
        return row
    vols = truth.volumes_ml
    edv, esv = float(vols.max()), float(vols.min())
    true_ef = 100.0 * (edv - esv) / edv
    simpson = simpson_biplane(result, study)
    row.update({"true_ef_percent": true_ef, "ef_percent": result.ef_percent, "ef_error": result.ef_percent - true_ef,
                "abs_ef_error": abs(result.ef_percent - true_ef), "volumes": list(result_volumes(result)),
                "simpson_ef_percent": None if simpson is None else simpson["ef_percent"],
                "anchor": {k: v for k, v in result.extras.get("anchor", {}).items() if k.startswith("foreshortening")
                           or k == "long_axis_mm"},
                "evidence": [asdict(ev) for ev in reconstruction_evidence(study, result)],
                "seconds": time.perf_counter() - start})
    return score_row(row)


def score_row(row: dict[str, Any]) -> dict[str, Any]:
    """(Re)compute a row's quality (level, score, reasons, per-view signals) from its stored evidence, with the
    current thresholds (so a finished run can be re-scored without reconstructing again)."""
    if "evidence" not in row:
        return row
    edv, esv, ef = row["volumes"]
    quality = assess([ViewEvidence(**ev) for ev in row["evidence"]], edv, esv, ef, row.get("simpson_ef_percent"))
    row.update({k: quality[k] for k in ("level", "score", "reasons", "views", "agreement")})
    return row


def auc(bad: Sequence[float], good: Sequence[float]) -> float | None:
    """P(score of a bad case > score of a good case), ties counted half (Mann–Whitney); None if a class is empty."""
    if not bad or not good:
        return None
    b, g = np.asarray(bad, float)[:, None], np.asarray(good, float)[None, :]
    return float(((b > g).sum() + 0.5 * (b == g).sum()) / (b.size * g.size))


def error_class(abs_error: float) -> str:
    return "<2" if abs_error < GOOD_ERROR else ">5" if abs_error > BAD_ERROR else "2-5"


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """AUC, confusion table (level × |EF error| class) and flag rates, per set and over both."""
    out: dict[str, Any] = {}
    for name in (*SETS, "all"):
        sel = [r for r in rows if "score" in r and (name == "all" or r["set"] == name)]
        if not sel:
            continue
        bad = [r["score"] for r in sel if r["abs_ef_error"] > BAD_ERROR]
        good = [r["score"] for r in sel if r["abs_ef_error"] < GOOD_ERROR]
        table = {lv: {c: 0 for c in ("<2", "2-5", ">5")} for lv in LEVELS}
        for r in sel:
            table[r["level"]][error_class(r["abs_ef_error"])] += 1
        flagged_bad = sum(table[lv][">5"] for lv in ("review", "unreliable"))
        passed_good = table["good"]["<2"]
        out[name] = {"n": len(sel), "n_failed": sum(1 for r in rows if "error" in r and
                                                    (name == "all" or r["set"] == name)),
                     "n_bad": len(bad), "n_good": len(good), "auc_score": auc(bad, good), "confusion": table,
                     "bad_flagged": flagged_bad, "good_passed": passed_good,
                     "median_abs_ef_error": float(np.median([r["abs_ef_error"] for r in sel]))}
    return out


def run_quality_bench(sets: Sequence[str], seeds: dict[str, list[int]], prior: ShapePrior | ReconPrior,
                      device: torch.device,
                      segmenter: Segmenter | None, profile: str = "default", n_frames: int = 20,
                      progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every case of every set in ``sets`` (seeds per set; the sets interleaved, so a partial run covers
    each), then :func:`summarise`."""
    rows = []
    order = [(kind, s[i]) for i in range(max(len(seeds[k]) for k in sets)) for kind in sets
             if i < len(s := seeds[kind])]
    for kind, seed in order:
        rows.append(evaluate(kind, seed, prior, device, segmenter, profile, n_frames))
        if progress is not None:
            progress(rows[-1])
    return {"rows": rows, "summary": summarise(rows), "views": list(BENCH_VIEWS), "profile": profile,
            "n_frames": n_frames, "good_error": GOOD_ERROR, "bad_error": BAD_ERROR}


def quality_markdown(doc: dict[str, Any]) -> str:
    """The results table for docs/results.md."""
    lines = ["| set | n | \\|EF err\\| > 5 / < 2 | AUC (score) | bad flagged | good passed | median \\|EF err\\| |",
             "|---|---|---|---|---|---|---|"]
    for name, s in doc["summary"].items():
        a = "n/a" if s["auc_score"] is None else f"{s['auc_score']:.3f}"
        lines.append(f"| {name} | {s['n']} | {s['n_bad']} / {s['n_good']} | {a} | {s['bad_flagged']}/{s['n_bad']} | "
                     f"{s['good_passed']}/{s['n_good']} | {s['median_abs_ef_error']:.2f} |")
    for name, s in doc["summary"].items():
        lines += ["", f"Confusion ({name}): level × |EF error| class (points)", "",
                  "| level | < 2 | 2–5 | > 5 |", "|---|---|---|---|"]
        for lv in LEVELS:
            row = s["confusion"][lv]
            lines.append(f"| {lv} | {row['<2']} | {row['2-5']} | {row['>5']} |")
    return "\n".join(lines) + "\n"
