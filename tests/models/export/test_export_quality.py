"""The quality gate in every output: report.json (with ingest warnings), GLB asset extras, VTP field data."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from models.export.report import validate_report
from models.export.writer import write_outputs
from models.recon.result import ReconResult
from models.study import Study, ViewSequence


def _study(views: tuple[str, ...], meta: dict | None = None, jump: bool = False) -> Study:
    rr, cc = np.mgrid[:96, :64]
    radii = 36.0 - 6.0 * (1 - np.cos(2 * np.pi * np.arange(6) / 6))
    if jump:
        radii[2] = 12.0
    masks = np.stack([((rr - 8 - r) / r) ** 2 + ((cc - 32) / 12.0) ** 2 <= 1 for r in radii]).astype(np.uint8)
    return Study({v: ViewSequence(v, masks, (0.5, 0.5), 25.0) for v in views}, meta or {})


def _glb_json(path: Path) -> dict:
    raw = path.read_bytes()
    n = int.from_bytes(raw[12:16], "little")
    return json.loads(raw[20 : 20 + n])


def test_without_a_study_there_is_no_quality(tmp_path: Path, beating_result: ReconResult):
    write_outputs(beating_result, tmp_path, {})
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["quality"] is None
    assert "quality" not in _glb_json(tmp_path / "mesh.glb")["asset"]["extras"]


def test_quality_reaches_the_report_the_glb_and_the_vtp(tmp_path: Path, beating_result: ReconResult):
    meta = {"ingest": {"sources": [{"view": "A4C", "used": True, "segmentation_confidence": 0.91}],
                       "warnings": ["views.A4C (input 1 (dicom)): LV masks were produced by the segmenter"]}}
    write_outputs(beating_result, tmp_path, {}, _study(("A4C", "A2C"), meta, jump=True))
    report = json.loads((tmp_path / "report.json").read_text())
    validate_report(report)
    q = report["quality"]
    assert q["level"] == "unreliable" and any("A4C" in r and "roughness" in r for r in q["reasons"])
    assert q["views"]["A4C"]["mask_source"] == "segmenter" and q["views"]["A2C"]["mask_source"] == "masks supplied"
    assert report["warnings"][0] == "ingest: views.A4C (input 1 (dicom)): LV masks were produced by the segmenter"
    assert any(w.startswith("quality gate: unreliable") for w in report["warnings"])
    assert _glb_json(tmp_path / "mesh.glb")["asset"]["extras"]["quality"] == {"level": "unreliable",
                                                                             "score": q["score"]}
    vtp = (tmp_path / "meshes" / "frame_000.vtp").read_text()
    level = re.search(r'Name="QualityLevel"[^>]*>([^<]+)<', vtp)
    assert level is not None
    assert int(np.frombuffer(base64.b64decode(level.group(1))[8:], "<i4")[0]) == 2


def test_a_one_view_mask_study_is_review_and_says_so(tmp_path: Path, result_factory: object):
    result = result_factory(view_fits=[f for f in result_factory().view_fits if f.view == "A4C"])  # type: ignore
    write_outputs(result, tmp_path, {}, _study(("A4C",)))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["quality"]["level"] == "review"
    assert report["warnings"] != []  # the issue: a one-view study reported warnings: []
    assert report["quality"]["agreement"] == {"fac_disagreement": None, "length_disagreement": None,
                                              "simpson_ef_disagreement": None}


def test_the_gate_compares_the_ef_with_simpsons_on_the_same_masks(tmp_path: Path, beating_result: ReconResult):
    write_outputs(beating_result, tmp_path, {}, _study(("A4C", "A2C")))
    report = json.loads((tmp_path / "report.json").read_text())
    simpson = report["simpson_biplane"]
    assert simpson is not None
    gap = report["quality"]["agreement"]["simpson_ef_disagreement"]
    assert gap == pytest.approx(abs(report["ef_percent"] - simpson["ef_percent"]), abs=1e-3)


@pytest.mark.parametrize("level", ["good", "review", "unreliable"])
def test_the_preview_names_the_level(level: str, beating_result: ReconResult):
    from models.export.preview import preview_png_bytes

    png = preview_png_bytes(beating_result, {"level": level, "score": 1.0, "reasons": ["x"]})
    assert png[:4] == b"\x89PNG" and png != preview_png_bytes(beating_result)
