"""report.json: contents, schema validation with field names, NaN handling, shipped JSON Schema."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest

from models.errors import ErrorCode, ModelError
from models.export.report import (
    SCHEMA_ID,
    SCHEMA_PATH,
    build_report,
    dump_report_json,
    report_json_schema,
    validate_report,
)
from models.recon.result import ReconResult

REQUIRED_TOP_LEVEL = (
    "schema", "volumes_ml", "edv_ml", "esv_ml", "sv_ml", "ef_percent", "ed_frame", "es_frame",
    "frame_times_s", "views", "timings_s", "model", "warnings", "units",
)


def test_report_holds_the_result(beating_result: ReconResult) -> None:
    doc = build_report(beating_result, {"views": ["A4C", "A2C"], "fps": 25.0})
    for key in REQUIRED_TOP_LEVEL:
        assert key in doc
    r = beating_result
    assert doc["schema"] == SCHEMA_ID
    assert doc["n_frames"] == r.n_frames
    np.testing.assert_allclose(doc["volumes_ml"], r.volumes_ml)
    np.testing.assert_allclose(doc["frame_times_s"], r.frame_times_s)
    assert doc["edv_ml"] == pytest.approx(r.edv_ml)
    assert doc["esv_ml"] == pytest.approx(r.esv_ml)
    assert doc["sv_ml"] == pytest.approx(r.edv_ml - r.esv_ml)
    assert doc["ef_percent"] == pytest.approx(100 * (r.edv_ml - r.esv_ml) / r.edv_ml)
    assert (doc["ed_frame"], doc["es_frame"]) == (r.ed_frame, r.es_frame)
    assert [v["view"] for v in doc["views"]] == ["A4C", "A2C"]
    a4c = doc["views"][0]
    assert a4c["dice_ed"] == pytest.approx(0.95) and a4c["iou_mean"] == pytest.approx(0.89)
    np.testing.assert_allclose(a4c["pose"]["rotation"], r.view_fits[0].pose.rotation)
    np.testing.assert_allclose(a4c["pose"]["translation_mm"], r.view_fits[0].pose.translation)
    assert (a4c["ed_frame"], a4c["es_frame"]) == (0, r.n_frames // 2)
    assert doc["timings_s"] == {"anchor": 1.25, "motion": 3.5}
    assert doc["model"]["prior"] == "smoke" and doc["model"]["code_version"]
    assert doc["units"]["length"] == "mm" and doc["units"]["volume"] == "mL"
    assert doc["mesh"] == {"n_vertices": r.vertices.shape[1], "n_faces": len(r.faces), "watertight": True}
    assert doc["study"] == {"views": ["A4C", "A2C"], "fps": 25.0}
    assert doc["warnings"] == []


def test_report_json_round_trip_validates(beating_result: ReconResult) -> None:
    doc = build_report(beating_result, {})
    again = json.loads(dump_report_json(doc))
    assert again == doc
    assert validate_report(again).edv_ml == pytest.approx(beating_result.edv_ml)


def test_non_finite_numbers_become_null_with_a_warning(result_factory: Any) -> None:
    base = result_factory()
    vols = base.volumes_ml.copy()
    vols[2] = np.nan
    result = result_factory(
        volumes_ml=vols,
        timings_s={"anchor": float("inf"), "motion": 1.0},
        model_info={"loss": np.float32("nan")},
        extras={
            "final_loss": 0.25,
            "big": np.zeros(1000),
            "curve": [1.0, float("nan")],
            "residuals": {"A4C": np.float64(0.5), "A2C": np.array([1.0, 2.0])},
            "history": list(range(5000)),
            "mesh": object(),
        },
    )
    doc = build_report(result, {"fps": float("nan")})
    assert doc["volumes_ml"][2] is None
    assert doc["timings_s"] == {"motion": 1.0}
    assert doc["model"]["loss"] is None
    assert doc["study"]["fps"] is None
    assert doc["extras"] == {"final_loss": 0.25, "curve": [1.0, None], "residuals": {"A4C": 0.5, "A2C": [1.0, 2.0]}}
    text = " ".join(doc["warnings"])
    for fragment in ("volumes_ml[2]", "anchor", "model.loss", "study.fps", "extras.curve.1"):
        assert fragment in text
    dump_report_json(doc)  # allow_nan=False would raise on any NaN left


def test_single_frame_has_no_systolic_values(result_factory: Any) -> None:
    base = result_factory()
    one = result_factory(
        vertices=base.vertices[:1], frame_times_s=base.frame_times_s[:1], volumes_ml=base.volumes_ml[:1], es_frame=0
    )
    doc = build_report(one, {})
    assert doc["edv_ml"] == pytest.approx(base.volumes_ml[0])
    assert doc["esv_ml"] is None and doc["sv_ml"] is None and doc["ef_percent"] is None
    assert any("single frame" in w for w in doc["warnings"])


def test_zero_edv_gives_null_ef(result_factory: Any) -> None:
    base = result_factory()
    vols = base.volumes_ml.copy()
    vols[0] = 0.0
    doc = build_report(result_factory(volumes_ml=vols), {})
    assert doc["ef_percent"] is None
    assert any("ef_percent" in w for w in doc["warnings"])
    assert any("volumes_ml[0]" in w and "differs" in w for w in doc["warnings"])


def _set(doc: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    target: Any = doc
    for k in keys[:-1]:
        target = target[int(k)] if isinstance(target, list) else target[k]
    last = keys[-1]
    if value is _DELETE:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("edv_ml", _DELETE, "edv_ml"),
        ("schema", "echo4d-report/0", "schema"),
        ("views.0.dice_ed", 1.5, "views.0.dice_ed"),
        ("views.1.view", "PLAX", "views.1.view"),
        ("views.0.pose.scale", -1.0, "views.0.pose.scale"),
        ("views.0.pose.translation_mm", [0.0, 1.0], "views.0.pose.translation_mm"),
        ("timings_s.anchor", -2.0, "timings_s.anchor"),
        ("ed_frame", 99, "ed_frame"),
        ("volumes_ml", [1.0], "volumes_ml"),
        ("frame_times_s.1", 0.0, "frame_times_s"),
        ("units.length", "cm", "units.length"),
        ("model.code_version", _DELETE, "model.code_version"),
        ("surprise", 1, "surprise"),
        ("volumes_ml.1", float("nan"), "volumes_ml.1"),
        ("study.x", float("inf"), "study.x"),
    ],
)
def test_broken_report_names_the_field(beating_result: ReconResult, path: str, value: Any, field: str) -> None:
    doc = copy.deepcopy(build_report(beating_result, {}))
    _set(doc, path, value)
    with pytest.raises(ModelError) as info:
        validate_report(doc)
    assert info.value.code is ErrorCode.VALIDATION_FAILED
    assert info.value.field == field


def test_inconsistent_result_is_refused(result_factory: Any) -> None:
    base = result_factory()
    with pytest.raises(ModelError):
        build_report(result_factory(frame_times_s=base.frame_times_s[:-1]), {})


def test_shipped_schema_is_the_generated_one() -> None:
    shipped = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert shipped == report_json_schema(), (
        "models/export/report.schema.json is stale: regenerate it with "
        "`.venv/bin/python -c 'from models.export.report import write_report_schema; write_report_schema()'`"
    )
    assert shipped["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for key in REQUIRED_TOP_LEVEL:
        assert key in shipped["required"]
    assert shipped["properties"]["schema"]["const"] == SCHEMA_ID
