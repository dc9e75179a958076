"""`echo4d reconstruct` reads DICOM/video/NIfTI/PNG directly; --view/--fps/--spacing fill what the file lacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli import reconstruct as reconstruct_cli
from tests.models.ingest.ingest_builders import cardiac_cine, write_nifti, write_png_folder

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    reconstruct_cli.register(app)
    return app


def _nifti(tmp_path: Path) -> Path:
    return write_nifti(tmp_path / "cine.nii.gz", cardiac_cine(8, 10.0, cycle_s=0.8), (0.5, 0.5))


@pytest.mark.parametrize(("args", "code", "says"), [
    ([], "missing_view", "--view"),
    (["--view", "A4C"], "bad_timing", "--fps"),
    (["--view", "A5C", "--fps", "25"], "unknown_view", "view"),
    (["--view", "A4C", "--fps", "25", "--spacing", "0.5,x"], "bad_spacing", "--spacing"),
    (["--view", "A4C", "--fps", "0"], "bad_timing", "fps"),
])
def test_missing_or_bad_facts_exit_2_naming_the_flag(tmp_path: Path, args: list[str], code: str, says: str):
    res = runner.invoke(_app(), ["reconstruct", str(_nifti(tmp_path)), "--out", str(tmp_path / "o"), *args])
    assert res.exit_code == 2, res.output
    assert code in res.output and says in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_a_png_folder_with_flags_reconstructs_with_quality(tmp_path: Path):
    masks = cardiac_cine(8, 10.0, cycle_s=0.8, shape=(128, 96))
    folder = write_png_folder(tmp_path / "a4c_pngs", masks)
    out = tmp_path / "out"
    res = runner.invoke(_app(), ["reconstruct", str(folder), "--out", str(out), "--view", "A2C", "--fps", "10",
                                 "--spacing", "0.8", "--profile", "smoke", "--quiet"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert [v["view"] for v in report["views"]] == ["A2C"]
    q = report["quality"]
    assert q["views"]["A2C"]["mask_source"] == "masks supplied" and q["level"] in ("review", "unreliable")
    areas_cm2 = masks.reshape(len(masks), -1).sum(axis=1) * 0.8 * 0.8 / 100  # --spacing 0.8 used for both axes
    assert q["views"]["A2C"]["area_range_cm2"] == pytest.approx([areas_cm2.min(), areas_cm2.max()], abs=1e-3)
    assert report["study"]["input"] == "a4c_pngs"
