"""The quality gate of one reconstruction (pure, torch-free): :func:`assess_reconstruction`.

See :mod:`models.quality.gate` for the levels and thresholds, :mod:`models.quality.signals`
for the measured signals, docs/report-schema.md for the ``quality`` block of report.json.
"""

from __future__ import annotations

import math
from typing import Any

from models.quality.gate import LEVELS, QUALITY_FORMAT, THRESHOLDS, ViewEvidence, assess
from models.quality.signals import segmentation_confidence
from models.recon.result import ReconResult
from models.study import Study

__all__ = ["LEVELS", "QUALITY_FORMAT", "THRESHOLDS", "ViewEvidence", "assess", "assess_reconstruction",
           "ingest_signals", "reconstruction_evidence", "result_volumes", "segmentation_confidence"]


def ingest_signals(meta: dict[str, Any], key: str = "segmentation_confidence") -> dict[str, float]:
    """A segmenter signal per view (``key``: ``segmentation_confidence`` or ``segmentation_fac_spread``)
    from ``Study.meta["ingest"]`` (views whose masks came from the segmenter; views with supplied
    masks are absent)."""
    sources = (meta.get("ingest") or {}).get("sources") or []
    out: dict[str, float] = {}
    for src in sources:
        value = src.get(key) if isinstance(src, dict) else None
        if src.get("used", True) and src.get("view") and isinstance(value, int | float):
            out[str(src["view"])] = float(value)
    return out


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def reconstruction_evidence(study: Study, result: ReconResult) -> list[ViewEvidence]:
    """The gate's evidence for each view ``result`` fitted (masks and confidence from ``study``)."""
    confidences = ingest_signals(study.meta)
    spreads = ingest_signals(study.meta, "segmentation_fac_spread")
    evidence = []
    for fit in result.view_fits:
        seq = study.views[fit.view]
        evidence.append(ViewEvidence.from_masks(fit.view, seq.masks, seq.pixel_spacing_mm, confidences.get(fit.view),
                                                _finite(fit.dice_ed), _finite(fit.dice_mean), fit.foreshortening_mm,
                                                spreads.get(fit.view)))
    return evidence


def result_volumes(result: ReconResult) -> tuple[float | None, float | None, float | None]:
    """(EDV, ESV, EF) of ``result`` as the gate reads them (None: not finite, or not defined for one frame)."""
    single = result.n_frames == 1
    return (_finite(result.edv_ml), None if single else _finite(result.esv_ml),
            None if single else _finite(result.ef_percent))


def assess_reconstruction(study: Study, result: ReconResult, simpson_ef_percent: float | None = None) -> dict[str, Any]:
    """The ``quality`` block for ``result`` reconstructed from ``study`` (the views it fitted); ``simpson_ef_percent``
    Simpson's biplane EF on the same masks (``models.export.simpson_values``), None where not measured."""
    return assess(reconstruction_evidence(study, result), *result_volumes(result), simpson_ef_percent)
