"""The shipped shape prior loads through its verified path and reproduces the metrics in its sidecar."""

from __future__ import annotations

import pytest

from models.prior.checkpoint import DEFAULT_CHECKPOINT, load_default_prior, read_sidecar

SHIPPED = DEFAULT_CHECKPOINT.is_file() and DEFAULT_CHECKPOINT.with_suffix(".json").is_file()
pytestmark = pytest.mark.skipif(not SHIPPED, reason="no shape prior shipped yet under models/checkpoints/")


def test_shipped_checkpoint_is_small_and_documented() -> None:
    doc = read_sidecar(DEFAULT_CHECKPOINT)
    assert DEFAULT_CHECKPOINT.stat().st_size < 20 * 1024 * 1024
    assert doc["cohort_version"].startswith("cohort-")
    assert doc["train_config"]["data_source"] == "cohort"
    assert doc["metrics"]["test"]["per_case"], "the sidecar must carry per-case test metrics"


def test_default_prior_is_loaded_once_and_frozen() -> None:
    a = load_default_prior("cpu")
    assert load_default_prior("cpu") is a
    assert not a.training and not any(p.requires_grad for p in a.parameters())


@pytest.mark.slow
def test_shipped_checkpoint_reproduces_its_sidecar_metrics() -> None:
    from models.prior.data import make_source
    from models.prior.evaluate import evaluate_case

    doc = read_sidecar(DEFAULT_CHECKPOINT)
    prior = load_default_prior("cpu")
    rows = doc["metrics"]["test"]["per_case"]
    source = make_source("cohort")
    checked = 0
    for seed in doc["metrics"]["test"]["seeds"][:2]:
        wanted = [r for r in rows if r["seed"] == seed and r["phase"] == "ed" and r["views"] in ("A4C+A2C+A3C", "A2C")]
        got = evaluate_case(prior, source.eval_case(seed), [r["views"].split("+") for r in wanted], "cpu",
                            phases=("ed",))
        for w, g in zip(wanted, got, strict=True):
            assert g["views"] == w["views"]
            for key, tol in (("mae_mm", 0.02), ("hausdorff_mm", 0.2), ("dice", 0.002), ("volume_error_ml", 0.2)):
                assert g[key] == pytest.approx(w[key], abs=tol), (seed, w["views"], key)
            checked += 1
    assert checked == 4
