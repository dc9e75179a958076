"""`echo4d ingest` and `echo4d train-segmenter` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from models.study import load_study
from tests.models.ingest.ingest_builders import cardiac_cine, dicom_dataset, write_dicom, write_npy

runner = CliRunner()


def test_ingest_writes_bundle_and_preview(tmp_path: Path) -> None:
    masks = cardiac_cine(30, 30.0, cycle_s=0.8)
    labels = masks * 3  # nnU-Net style map with the cavity as label 3
    write_npy(tmp_path / "a2c.npy", labels)
    out = tmp_path / "study"
    res = runner.invoke(app, ["ingest", str(tmp_path / "a2c.npy"), "--out", str(out), "--view", "A2C",
                              "--label", "3", "--spacing", "0.4,0.5", "--fps", "30"])
    assert res.exit_code == 0, res.output
    study = load_study(out)
    np.testing.assert_array_equal(study.views["A2C"].masks, masks)
    assert study.views["A2C"].pixel_spacing_mm == (0.4, 0.5)
    png = (out / "preview.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert json.loads((out / "study.json").read_text())["ingest"]["sources"][0]["format"] == "npy"


def test_ingest_dicom_uses_its_metadata(tmp_path: Path) -> None:
    masks = cardiac_cine(20, 25.0)
    write_dicom(tmp_path / "x.dcm", dicom_dataset(masks * 255, series_description="Apical 2 chamber",
                                                  frame_time_ms=40.0, delta_cm=0.05))
    res = runner.invoke(app, ["ingest", str(tmp_path / "x.dcm"), "--out", str(tmp_path / "s"), "--no-preview"])
    assert res.exit_code == 0, res.output
    study = load_study(tmp_path / "s")
    assert study.view_names == ["A2C"] and study.views["A2C"].pixel_spacing_mm == pytest.approx((0.5, 0.5))
    assert not (tmp_path / "s" / "preview.png").exists()


@pytest.mark.parametrize(("args", "code"), [
    (["--spacing", "abc"], "bad_spacing"),
    ([], "missing_view"),
    (["--spacing", "0.3", "--fps", "20", "--view", "PSAX"], "unknown_view"),
])
def test_ingest_errors_are_one_line_and_exit_2(tmp_path: Path, args: list[str], code: str) -> None:
    write_npy(tmp_path / "m.npy", cardiac_cine(10, 20.0))
    res = runner.invoke(app, ["ingest", str(tmp_path / "m.npy"), "--out", str(tmp_path / "s"), *args])
    assert res.exit_code == 2
    assert res.output.strip().startswith(f"error: {code}") and res.output.strip().count("\n") == 0


def test_bmode_without_a_shipped_segmenter_fails_cleanly(tmp_path: Path) -> None:
    write_npy(tmp_path / "b.npy", np.random.default_rng(0).integers(0, 255, (4, 32, 32), dtype=np.uint8))
    res = runner.invoke(app, ["ingest", str(tmp_path / "b.npy"), "--out", str(tmp_path / "s"), "--view", "A4C",
                              "--spacing", "0.3", "--fps", "20", "--segmenter", str(tmp_path / "none.pt")])
    assert res.exit_code == 2 and "checkpoint_invalid" in res.output


@pytest.mark.slow
def test_train_segmenter_smoke(tmp_path: Path) -> None:
    out = tmp_path / "seg.pt"
    res = runner.invoke(app, ["train-segmenter", "--profile", "smoke", "--steps", "3", "--threads", "1",
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["format"] == "echo4d-segmenter/1" and doc["train_config"]["steps"] == 3
