"""Cohort-level statistics: EDV / EF ranges and phenotype mix over many subject draws."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from models.cohort.phenotypes import PHENOTYPE_WEIGHTS, PHENOTYPES, draw_phenotype_params
from models.cohort.realism import REALISM_SEED_OFFSET, cohort_metrics, coverage, real_case_metrics
from models.cohort.splits import training_seeds
from models.cohort.subject import Stream, generate_subject, stream_rng

SEEDS = training_seeds(300, offset=REALISM_SEED_OFFSET)
REAL = Path(__file__).resolve().parents[3] / "../shared/data/real-lv-4d/biv-me-patient1/bivme_patient1_lv_endo.npz"


@pytest.fixture(scope="module")
def cohort() -> dict[str, np.ndarray]:
    """Global metrics of 300 subjects (ED mesh + full-contraction ES mesh each)."""
    return cohort_metrics(SEEDS)


@pytest.mark.slow
def test_edv_ef_histogram_covers_the_clinical_ranges(cohort: dict[str, np.ndarray]) -> None:
    seeds = SEEDS
    m = cohort
    edv, ef = m["edv_ml"], m["ef_percent"]
    assert edv.min() >= 50 and edv.max() <= 310
    assert ef.min() >= 5 and ef.max() <= 76
    assert (edv < 70).sum() >= 3 and (edv > 250).sum() >= 3
    assert (ef < 20).sum() >= 3 and (ef > 65).sum() >= 3
    hist_edv, _ = np.histogram(edv, bins=np.arange(60, 301, 40))
    hist_ef, _ = np.histogram(ef, bins=np.arange(10, 76, 13))
    assert (hist_edv > 0).all() and (hist_ef > 0).all()  # no gaps across 60–300 mL, 10–75 %
    phen = Counter(draw_phenotype_params(stream_rng(s, Stream.SUBJECT)).phenotype for s in seeds)
    assert set(phen) == set(PHENOTYPES)
    for name, weight in zip(PHENOTYPES, PHENOTYPE_WEIGHTS, strict=True):
        assert abs(phen[name] / len(seeds) - weight) < 0.08


@pytest.mark.parametrize("seed", [0, 17, 123_456])
def test_subject_is_deterministic(seed: int) -> None:
    a, b = generate_subject(seed), generate_subject(seed)
    assert a == b
    np.testing.assert_array_equal(a.cycle(5).vertices, b.cycle(5).vertices)


@pytest.mark.slow
def test_real_case_metrics_inside_cohort_distribution(cohort: dict[str, np.ndarray]) -> None:
    """EDV, ESV, EF, long-axis length, sphericity and wall-motion amplitude of the real biv-me
    case fall within the cohort's 1st–99th percentiles."""
    if not REAL.is_file():
        pytest.skip(f"real LV case not available at {REAL} (shared data folder absent)")
    from models.geometry.canonical import load_real_lv_4d

    metrics = real_case_metrics(load_real_lv_4d(REAL))
    assert metrics.edv_ml == pytest.approx(178.96, abs=0.1)
    assert metrics.ef_percent == pytest.approx(59.76, abs=0.1)
    for c in coverage(metrics, cohort):
        assert c.inside, c
