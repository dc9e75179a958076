"""`echo4d bench api` against a freshly started embedded server: every job accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli.bench_api  # noqa: F401  (adds `bench api`)
from cli import app
from service.loadgen import _pct, synthetic_study_zip


def test_synthetic_studies_are_valid_and_distinct(tmp_path: Path):
    from models.study import load_study

    a, b = synthetic_study_zip(1), synthetic_study_zip(2)
    assert a != b
    (tmp_path / "a.zip").write_bytes(a)
    assert load_study(tmp_path / "a.zip").view_names == ["A4C", "A2C"]


def test_percentiles():
    assert _pct([], 0.5) == 0.0
    assert _pct([float(i) for i in range(101)], 0.99) == 99.0


@pytest.mark.slow
def test_bench_api_accounts_for_every_job(tmp_path: Path):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["bench", "api", "--jobs", "4", "--concurrency", "2", "--timeout-s", "120",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["accepted"] == 4 and report["lost"] == 0 and report["duplicate_jobs"] == 0
    assert sum(report["by_status"].values()) == 4
    assert report["post_p99_ms"] >= report["post_p50_ms"] > 0
    assert report["api_rss_mb_max"] is not None and report["api_rss_mb_max"] > 10
