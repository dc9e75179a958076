"""The study bundle format: round trips (directory and zip) and a table of bad bundles."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.errors import ErrorCode, InputError
from models.study import STUDY_FORMAT, Study, ViewSequence, load_study, save_study


def _disc_masks(t: int = 4, h: int = 64, w: int = 48) -> np.ndarray:
    rr, cc = np.mgrid[0:h, 0:w]
    out = np.zeros((t, h, w), np.uint8)
    for k in range(t):
        out[k] = ((rr - 30) ** 2 / (20 - k) ** 2 + (cc - 24) ** 2 / 12**2) <= 1
    return out


def _study() -> Study:
    return Study(
        {
            "A4C": ViewSequence("A4C", _disc_masks(), (0.5, 0.6), 30.0),
            "A2C": ViewSequence("A2C", _disc_masks(5), (0.4, 0.4), 25.0),
        }
    )


def test_directory_round_trip(tmp_path: Path) -> None:
    study = _study()
    save_study(study, tmp_path / "s")
    loaded = load_study(tmp_path / "s")
    assert loaded.view_names == ["A4C", "A2C"]
    for name in study.view_names:
        np.testing.assert_array_equal(loaded.views[name].masks, study.views[name].masks)
        assert loaded.views[name].pixel_spacing_mm == study.views[name].pixel_spacing_mm
        assert loaded.views[name].fps == study.views[name].fps


@pytest.mark.parametrize("nested", [False, True])
def test_zip_round_trip(tmp_path: Path, nested: bool) -> None:
    save_study(_study(), tmp_path / "s")
    zpath = tmp_path / "s.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in (tmp_path / "s").iterdir():
            zf.write(f, f"bundle/{f.name}" if nested else f.name)
    loaded = load_study(zpath)
    np.testing.assert_array_equal(loaded.views["A2C"].masks, _disc_masks(5))


def test_static_study_round_trip(tmp_path: Path) -> None:
    """One frame in every view is a static (3D) study, not a refusal."""
    still = Study({"A4C": ViewSequence("A4C", _disc_masks(1), (0.5, 0.6), 30.0),
                   "A2C": ViewSequence("A2C", _disc_masks(1), (0.4, 0.4), 25.0)})
    save_study(still, tmp_path / "s")
    loaded = load_study(tmp_path / "s")
    assert loaded.is_static and not _study().is_static
    assert loaded.views["A2C"].masks.shape == (1, 64, 48)


def test_subset_names_missing_view() -> None:
    with pytest.raises(InputError) as err:
        _study().subset(["A3C"])
    assert err.value.code is ErrorCode.MISSING_VIEW


def _edit_manifest(fn: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        doc = json.loads((d / "study.json").read_text())
        fn(doc)
        (d / "study.json").write_text(json.dumps(doc))

    return apply


def _replace_masks(arr: Any) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        np.save(d / "A4C.npy", arr)

    return apply


def _set(path: list[str], value: Any) -> Callable[[dict[str, Any]], None]:
    def fn(doc: dict[str, Any]) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return fn


BAD_BUNDLES: list[tuple[str, Callable[[Path], None], ErrorCode, str]] = [
    ("wrong format", _edit_manifest(_set(["format"], "other/1")), ErrorCode.INVALID_MANIFEST, "format"),
    ("no views", _edit_manifest(_set(["views"], {})), ErrorCode.MISSING_VIEW, "views"),
    ("unknown view", _edit_manifest(lambda d: d["views"].update(PLAX=d["views"]["A4C"])), ErrorCode.UNKNOWN_VIEW,
     "views.PLAX"),
    ("zero spacing", _edit_manifest(_set(["views", "A4C", "pixel_spacing_mm"], [0, 0.5])), ErrorCode.BAD_SPACING,
     "views.A4C.pixel_spacing_mm"),
    ("nan spacing", _edit_manifest(_set(["views", "A4C", "pixel_spacing_mm"], [float("nan"), 0.5])),
     ErrorCode.BAD_SPACING, "views.A4C.pixel_spacing_mm"),
    ("one spacing", _edit_manifest(_set(["views", "A4C", "pixel_spacing_mm"], [0.5])), ErrorCode.BAD_SPACING,
     "views.A4C.pixel_spacing_mm"),
    ("negative fps", _edit_manifest(_set(["views", "A4C", "fps"], -3)), ErrorCode.BAD_TIMING, "views.A4C.fps"),
    ("path traversal", _edit_manifest(_set(["views", "A4C", "masks"], "../x.npy")), ErrorCode.INVALID_MANIFEST,
     "views.A4C.masks"),
    ("missing file", _edit_manifest(_set(["views", "A4C", "masks"], "gone.npy")), ErrorCode.INVALID_STUDY,
     "views.A4C.masks"),
    ("2-D masks", _replace_masks(np.ones((64, 48), np.uint8)), ErrorCode.BAD_DIMENSIONS, "views.A4C.masks"),
    ("single frame beside a cine", _replace_masks(_disc_masks(1)), ErrorCode.SINGLE_FRAME, "views.A4C.masks"),
    ("no frame", _replace_masks(_disc_masks(0)), ErrorCode.SINGLE_FRAME, "views.A4C.masks"),
    ("empty frame", _replace_masks(np.concatenate([_disc_masks(2), np.zeros((1, 64, 48), np.uint8)])),
     ErrorCode.EMPTY_MASK, "views.A4C.masks"),
    ("full frame", _replace_masks(np.ones((3, 64, 48), np.uint8)), ErrorCode.FULL_MASK, "views.A4C.masks"),
    ("label 2", _replace_masks(_disc_masks() * 2), ErrorCode.NO_LV_LABEL, "views.A4C.masks"),
    ("float masks", _replace_masks(_disc_masks().astype(np.float32)), ErrorCode.BAD_DTYPE, "views.A4C.masks"),
    ("too many frames", _replace_masks(np.ones((600, 16, 16), np.uint8)), ErrorCode.TOO_LARGE, "views.A4C.masks"),
    ("object array", _replace_masks(np.array([{}], dtype=object)), ErrorCode.BAD_DTYPE, "views.A4C.masks"),
    ("not json", lambda d: (d / "study.json").write_bytes(b"\xff{"), ErrorCode.INVALID_MANIFEST, "study.json"),
    ("not npy", lambda d: (d / "A4C.npy").write_bytes(b"hello"), ErrorCode.CORRUPT_FILE, "views.A4C.masks"),
    ("no manifest", lambda d: (d / "study.json").unlink(), ErrorCode.INVALID_MANIFEST, "study.json"),
]


@pytest.mark.parametrize(("case", "damage", "code", "field"), BAD_BUNDLES, ids=[b[0] for b in BAD_BUNDLES])
def test_bad_bundle_is_rejected_with_its_code(
    tmp_path: Path, case: str, damage: Callable[[Path], None], code: ErrorCode, field: str
) -> None:
    save_study(_study(), tmp_path / "s")
    damage(tmp_path / "s")
    with pytest.raises(InputError) as err:
        load_study(tmp_path / "s")
    assert err.value.code is code, (case, str(err.value))
    assert err.value.field == field
    assert str(err.value).startswith(code.value)


def test_truncated_npy_is_corrupt(tmp_path: Path) -> None:
    save_study(_study(), tmp_path / "s")
    raw = (tmp_path / "s" / "A4C.npy").read_bytes()
    (tmp_path / "s" / "A4C.npy").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InputError) as err:
        load_study(tmp_path / "s")
    assert err.value.code is ErrorCode.CORRUPT_FILE


def test_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(InputError) as err:
        load_study(tmp_path / "x.txt")
    assert err.value.code is ErrorCode.UNSUPPORTED_FORMAT
    with pytest.raises(InputError):
        load_study(tmp_path / "missing")


def test_manifest_format_constant() -> None:
    assert STUDY_FORMAT == "echo4d-study/1"
