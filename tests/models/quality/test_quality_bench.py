"""The quality benchmark's arithmetic: AUC (Mann–Whitney with ties), the confusion table, re-scoring rows."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest

from models.quality.bench import auc, error_class, quality_markdown, score_row, summarise
from models.quality.gate import ViewEvidence


@pytest.mark.parametrize(("bad", "good", "expected"), [
    ([3.0, 2.0], [1.0, 0.0], 1.0), ([0.0], [1.0], 0.0), ([1.0, 1.0], [1.0], 0.5), ([2.0, 0.5], [1.0, 0.0], 0.75),
    ([], [1.0], None),
])
def test_auc(bad: list[float], good: list[float], expected: float | None):
    assert auc(bad, good) == expected


@pytest.mark.parametrize(("error", "cls"), [(0.0, "<2"), (1.99, "<2"), (2.0, "2-5"), (5.0, "2-5"), (5.01, ">5")])
def test_error_classes(error: float, cls: str):
    assert error_class(error) == cls


def _row(kind: str, abs_error: float, roughness_jump: float) -> dict:
    areas = list(30.0 + 5.0 * np.cos(2 * np.pi * np.arange(12) / 12))
    areas[5] += roughness_jump
    ev = [ViewEvidence(v, areas, 80.0, None, 0.97, 0.96) for v in ("A4C", "A2C")]
    return {"set": kind, "case": "c", "abs_ef_error": abs_error, "evidence": [asdict(e) for e in ev],
            "volumes": [120.0, 60.0, 50.0]}


def test_rows_are_scored_from_their_evidence_and_summarised():
    rows = [score_row(_row("corrupted", 8.0, 12.0)), score_row(_row("corrupted", 1.0, 0.0)),
            score_row(_row("bmode", 6.0, 0.0)), score_row(_row("bmode", 3.0, 4.0)),
            {"set": "bmode", "case": "refused", "error": "InputError: empty"}]
    assert [r["level"] for r in rows[:4]] == ["unreliable", "good", "good", "review"]
    s = summarise(rows)
    assert s["corrupted"]["auc_score"] == 1.0 and s["corrupted"]["bad_flagged"] == 1
    assert s["bmode"]["auc_score"] is None and s["bmode"]["n_failed"] == 1  # no good case among bmode rows
    assert s["all"]["confusion"]["good"] == {"<2": 1, "2-5": 0, ">5": 1}
    assert s["all"]["n_bad"] == 2 and s["all"]["auc_score"] == pytest.approx(0.75)  # one win, one tie
    md = quality_markdown({"summary": s})
    assert "| corrupted | 2 | 1 / 1 | 1.000 |" in md and "Confusion (all)" in md


def _seg_row(simulator: str, fac_error: float, spread: float, confidence: float = 0.95) -> dict:
    return {"simulator": simulator, "case": "c", "view": "A4C", "fac_error": fac_error,
            "segmentation_fac_spread": spread, "segmentation_confidence": confidence, "area_roughness": 0.01,
            "long_axis_change": 0.1}


def test_segmentation_bench_summary_ranks_and_flags_per_signal():
    from models.quality.segmentation_bench import segmentation_markdown, summarise_segmentation

    rows = [_seg_row("classic", 0.08, 0.07), _seg_row("classic", 0.01, 0.01),
            _seg_row("physics", 0.10, 0.02, confidence=0.7), _seg_row("physics", 0.005, 0.03)]
    s = summarise_segmentation(rows)
    spread, conf, worst = (s["all"]["signals"][k] for k in ("segmentation_fac_spread", "segmentation_confidence",
                                                            "worst"))
    assert (s["all"]["n_bad"], s["all"]["n_good"]) == (2, 2)
    assert spread["auc"] == pytest.approx(0.75) and (spread["bad_flagged"], spread["good_flagged"]) == (1, 0)
    assert conf["auc"] == pytest.approx(0.75) and conf["bad_flagged"] == 1  # 0.7 < the review limit 0.8
    assert worst["bad_flagged"] == 2 and worst["good_flagged"] == 0
    assert s["classic"]["signals"]["segmentation_fac_spread"]["auc"] == 1.0
    assert "| all | 4 | 2 / 2 |" in segmentation_markdown({"summary": s})
