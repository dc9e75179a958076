"""views.json: each view's masks and the fitted contour per frame, as run lengths the web viewer decodes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.export.viewer_data import (
    VIEWS_SCHEMA,
    build_view_data,
    decode_run_lengths,
    dump_view_data,
    run_lengths,
)
from models.export.writer import write_outputs
from models.geometry.frames import ImagePlane
from models.geometry.mesh import Mesh
from models.geometry.slicing import slice_mask
from models.recon.result import ReconResult
from models.study import Study, ViewSequence


@pytest.mark.parametrize("mask", [np.zeros((3, 4)), np.ones((3, 4)), np.eye(4), np.array([[1, 0, 0], [0, 1, 1]])])
def test_run_lengths_round_trip(mask: np.ndarray) -> None:
    counts = run_lengths(mask)
    assert sum(counts) == mask.size and counts[0] >= 0
    assert np.array_equal(decode_run_lengths(counts, mask.shape), mask.astype(np.uint8))


def _study_of(result: ReconResult, shape: tuple[int, int] = (96, 96), spacing: float = 1.2,
              shrink: float = 1.0) -> Study:
    """'Observed' masks: the result's own slices in each fitted plane (``shrink`` < 1: a smaller LV)."""
    views = {}
    for fit in result.view_fits:
        plane = ImagePlane(shape, (spacing, spacing), fit.pose)
        apex = np.zeros(3)
        masks = np.stack([slice_mask(Mesh(apex + shrink * (v - apex), result.faces), plane)
                          for v in result.vertices])
        views[fit.view] = ViewSequence(fit.view, masks, (spacing, spacing), 25.0)
    return Study(views)


def test_masks_and_fitted_contours_per_frame(beating_result: ReconResult) -> None:
    study = _study_of(beating_result)
    doc = build_view_data(beating_result, study)
    assert doc["schema"] == VIEWS_SCHEMA and doc["n_frames"] == beating_result.vertices.shape[0]
    assert [v["view"] for v in doc["views"]] == ["A4C", "A2C"]
    for view in doc["views"]:
        assert view["shape"] == [96, 96] and len(view["frames"]) == doc["n_frames"]
        for t, frame in enumerate(view["frames"]):
            observed = decode_run_lengths(frame["mask"], (96, 96))
            assert np.array_equal(observed, study.views[view["view"]].masks[t])
            fitted = decode_run_lengths(frame["fitted"], (96, 96))
            assert fitted.sum() > 50
            assert frame["dice"] == pytest.approx(1.0)  # the masks are the mesh's own slices


def test_a_poorer_fit_shows_in_the_per_frame_dice(beating_result: ReconResult) -> None:
    doc = build_view_data(beating_result, _study_of(beating_result, shrink=0.8))
    dices = [f["dice"] for v in doc["views"] for f in v["frames"]]
    assert max(dices) < 0.95


def test_source_frames_pick_the_observed_frame(beating_result: ReconResult) -> None:
    """A phase-aligned reconstruction maps its frame t to source frame s(t) of each clip."""
    study = _study_of(beating_result)
    n = beating_result.vertices.shape[0]
    order = [(t + 2) % n for t in range(n)]
    shifted = ReconResult(**{**beating_result.__dict__,
                             "extras": {"source_frames": {v: order for v in ("A4C", "A2C")}}})
    doc = build_view_data(shifted, study)
    frame = doc["views"][0]["frames"][1]
    assert frame["source_frame"] == order[1]
    assert np.array_equal(decode_run_lengths(frame["mask"], (96, 96)), study.views["A4C"].masks[order[1]])


def test_the_writer_adds_views_json_with_a_study(tmp_path: Path, beating_result: ReconResult) -> None:
    files = write_outputs(beating_result, tmp_path / "with", {"job_id": "x"}, _study_of(beating_result))
    doc = json.loads(files["views.json"].read_text())
    assert doc["schema"] == VIEWS_SCHEMA
    report = json.loads(files["report.json"].read_text())
    assert "views.json" in [a["path"] for a in report["artifacts"]]
    assert files["views.json"].read_bytes() == dump_view_data(doc)
    assert "views.json" not in write_outputs(beating_result, tmp_path / "without", {"job_id": "x"})


def test_simpsons_biplane_values_of_the_observed_masks(tmp_path: Path, beating_result: ReconResult) -> None:
    from models.bench.simpson import simpson_biplane_volume_ml

    study = _study_of(beating_result)
    files = write_outputs(beating_result, tmp_path, {"job_id": "x"}, study)
    simpson = json.loads(files["report.json"].read_text())["simpson_biplane"]
    ed, es = beating_result.ed_frame, beating_result.es_frame
    a4c, a2c = study.views["A4C"], study.views["A2C"]
    assert simpson["ed_source_frames"] == {"A4C": ed, "A2C": ed} and simpson["es_source_frames"] == {"A4C": es,
                                                                                                    "A2C": es}
    assert simpson["edv_ml"] == pytest.approx(simpson_biplane_volume_ml(
        a4c.masks[ed], a4c.pixel_spacing_mm, a2c.masks[ed], a2c.pixel_spacing_mm), abs=0.01)
    assert simpson["edv_ml"] > simpson["esv_ml"] > 0
    assert simpson["ef_percent"] == pytest.approx(100 * (simpson["edv_ml"] - simpson["esv_ml"]) / simpson["edv_ml"],
                                                  abs=0.05)
    one_view = ReconResult(**{**beating_result.__dict__, "view_fits": beating_result.view_fits[:1]})
    report = write_outputs(one_view, tmp_path / "one", {"job_id": "x"}, Study({"A4C": study.views["A4C"]}))
    assert json.loads(report["report.json"].read_text())["simpson_biplane"] is None
