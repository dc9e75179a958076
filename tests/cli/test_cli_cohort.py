"""`echo4d cohort`: writes cases and a deterministic index; rejects seeds in the test range."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli import app


def test_cohort_command_writes_cases_and_index(tmp_path: Path) -> None:
    runner = CliRunner()
    args = ["cohort", "--n", "2", "--seed", "40", "--frames", "3", "--no-sdf"]
    r1 = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert r1.exit_code == 0, r1.output
    r2 = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--workers", "2"])
    assert r2.exit_code == 0, r2.output
    index = json.loads((tmp_path / "a" / "cohort.json").read_text())
    assert index["seeds"] == [40, 41] and index["generator_version"] == "cohort-2.2"
    assert [c["dir"] for c in index["cases"]] == ["case_000040", "case_000041"]
    assert (tmp_path / "a" / "case_000041" / "study" / "study.json").is_file()
    assert not (tmp_path / "a" / "case_000041" / "sdf.npz").exists()
    assert (tmp_path / "a" / "cohort.json").read_bytes() == (tmp_path / "b" / "cohort.json").read_bytes()
    a4c = "case_000040/study/A4C.npy"
    assert (tmp_path / "a" / a4c).read_bytes() == (tmp_path / "b" / a4c).read_bytes()


def test_cohort_command_test_split_and_bad_seed(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(
        app, ["cohort", "--n", "1", "--split", "test", "--frames", "2", "--no-sdf", "--out", str(tmp_path / "t")]
    )
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "t" / "cohort.json").read_text())["seeds"] == [900_000]
    bad = runner.invoke(app, ["cohort", "--n", "5", "--seed", "899998", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2
