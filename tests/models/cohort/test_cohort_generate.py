"""Case generation and writing: determinism, study bundle validity, ground truth, splits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.cohort.generate import CohortConfig, generate_case
from models.cohort.splits import TEST_SPLIT_SEEDS, frozen_test_seeds, training_seeds
from models.cohort.version import GENERATOR_VERSION
from models.cohort.writer import write_case
from models.geometry.frames import ImagePlane, ProbePose
from models.geometry.mesh import Mesh, mesh_volume_ml
from models.geometry.slicing import slice_mask
from models.study import load_study

SMALL = CohortConfig(n_frames=6, sdf_near=64, sdf_uniform=32)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cases")
    a = write_case(generate_case(123, SMALL), root / "a")
    b = write_case(generate_case(123, SMALL), root / "b")
    return a, b


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_seed_writes_identical_bytes(written: tuple[Path, Path]) -> None:
    a, b = written
    fa, fb = _files(a), _files(b)
    assert fa.keys() == fb.keys()
    assert {
        "study/study.json",
        "study/A4C.npy",
        "study_noisy/A3C.npy",
        "truth.npz",
        "truth.json",
        "preview.png",
        "sdf.npz",
    } <= set(fa)
    assert all(fa[k] == fb[k] for k in fa)


def test_different_seeds_differ() -> None:
    a, b = generate_case(1, SMALL), generate_case(2, SMALL)
    assert not np.array_equal(a.cycle.vertices, b.cycle.vertices)


def test_written_study_loads_and_matches_truth(written: tuple[Path, Path]) -> None:
    case_dir = written[0]
    study = load_study(case_dir / "study")
    noisy = load_study(case_dir / "study_noisy")
    assert study.view_names == ["A4C", "A2C", "A3C"] == noisy.view_names
    truth = np.load(case_dir / "truth.npz")
    doc = json.loads((case_dir / "truth.json").read_text())
    assert doc["generator_version"] == GENERATOR_VERSION and doc["seed"] == 123
    t = truth["vertices"].shape[0]
    assert t == 6 and truth["volumes_ml"].shape == (t,) and truth["frame_times_s"].shape == (t,)
    assert truth["pose_rotation"].shape == (3, t, 3, 3)
    assert int(truth["ed_frame"]) == int(np.argmax(truth["volumes_ml"]))
    assert int(truth["es_frame"]) == int(np.argmin(truth["volumes_ml"]))
    assert doc["ef_percent"] == pytest.approx(100 * (1 - doc["esv_ml"] / doc["edv_ml"]))
    assert "vertices" not in (case_dir / "study" / "study.json").read_text()
    # Re-slicing the stored mesh with the stored pose reproduces the stored clean mask.
    for v, view in enumerate(truth["view_names"]):
        seq = study.views[str(view)]
        assert seq.masks.shape == (t, 224, 224)
        assert seq.fps == pytest.approx(t / (60.0 / doc["heart_rate_bpm"]))
        frame = int(truth["es_frame"])
        pose = ProbePose(truth["pose_rotation"][v, frame], truth["pose_translation_mm"][v, frame])
        plane = ImagePlane((224, 224), tuple(truth["spacing_mm"]), pose)
        mesh = Mesh(truth["vertices"][frame].astype(np.float64), truth["faces"].astype(np.int64))
        resliced = slice_mask(mesh, plane)
        assert (seq.masks[frame] <= resliced).all()  # equal inside the fan, zero outside it
        assert abs(int(resliced.sum()) - int(seq.masks[frame].sum())) < 0.05 * seq.masks[frame].sum() + 50
        assert (noisy.views[str(view)].masks != seq.masks).any()
    vol = mesh_volume_ml(Mesh(truth["vertices"][0].astype(np.float64), truth["faces"].astype(np.int64)))
    assert vol == pytest.approx(truth["volumes_ml"][0], rel=1e-5)
    sdf = np.load(case_dir / "sdf.npz")
    assert sdf["points"].shape == (t, 96, 3) and sdf["sdf"].shape == (t, 96)


def test_optional_outputs() -> None:
    cfg = CohortConfig(n_frames=3, sdf=False, bmode=True, preview=False, views=("A2C",))
    case = generate_case(5, cfg)
    assert case.sdf_points is None and case.bmode is not None
    assert list(case.masks_clean) == ["A2C"] and case.bmode["A2C"].shape == (3, 224, 224)
    # Restricting the views does not change the pose a view gets.
    full = generate_case(5, CohortConfig(n_frames=3, sdf=False))
    np.testing.assert_array_equal(case.planes["A2C"].pose.rotation, full.planes["A2C"].pose.rotation)


def test_splits_are_disjoint_and_frozen() -> None:
    assert len(TEST_SPLIT_SEEDS) == 100 and TEST_SPLIT_SEEDS[0] == 900_000
    train = set(training_seeds(5000)) | set(training_seeds(100, offset=899_900))
    assert not train & set(TEST_SPLIT_SEEDS)
    assert frozen_test_seeds(3) == [900_000, 900_001, 900_002]
    assert 900_050 in TEST_SPLIT_SEEDS and 5 not in TEST_SPLIT_SEEDS
    with pytest.raises(ValueError):
        training_seeds(2, offset=899_999)
    with pytest.raises(ValueError):
        frozen_test_seeds(5, offset=98)
    assert generate_case(900_001, CohortConfig(n_frames=2, sdf=False, preview=False)).split == "test"


def test_the_tuning_split_is_disjoint_from_test_and_prior_training_seeds() -> None:
    from models.cohort.splits import TUNING_SPLIT_SEEDS, split_seeds

    assert split_seeds("tuning", 2, offset=1) == [600_001, 600_002]
    assert not set(TUNING_SPLIT_SEEDS) & set(TEST_SPLIT_SEEDS)
    assert not set(TUNING_SPLIT_SEEDS) & set(training_seeds(1000))
    with pytest.raises(ValueError, match="unknown split"):
        split_seeds("train", 1)
    with pytest.raises(ValueError, match="the tuning split has 100"):
        split_seeds("tuning", 5, offset=98)
