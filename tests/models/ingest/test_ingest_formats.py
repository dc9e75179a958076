"""Every input format round-trips the same synthetic masks; real files give the documented geometry."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ingest_builders import (
    base_masks,
    dicom_dataset,
    write_dicom,
    write_nifti,
    write_npy,
    write_png_folder,
    write_png_zip,
    write_video,
)

from models.ingest import ingest, load_any
from models.study import Study, ViewSequence, load_study, save_study

SHARED = Path(__file__).resolve().parents[3] / "../shared"
REAL_ECHO = SHARED / "data" / "real-echo"
MASKS = base_masks()
SPACING = (0.3, 0.3)
FPS = 25.0
CALLER = {"view": "A4C", "pixel_spacing_mm": list(SPACING), "fps": FPS}


def _dicom(syntax: str) -> Callable[[Path], tuple[list[Path], dict[str, Any] | None]]:
    def build(tmp: Path) -> tuple[list[Path], dict[str, Any] | None]:
        ds = dicom_dataset(MASKS * 255, syntax=syntax, frame_time_ms=1000 / FPS, delta_cm=SPACING[0] / 10,
                           series_description="Apical 4 chamber")
        return [write_dicom(tmp / "cine.bin", ds)], None  # metadata only: name gives nothing away

    return build


def _single_frame_series(tmp: Path) -> tuple[list[Path], dict[str, Any] | None]:
    folder = tmp / "series"
    folder.mkdir()
    order = np.random.default_rng(0).permutation(len(MASKS))
    for k in order:  # written in shuffled order; InstanceNumber restores it
        ds = dicom_dataset(MASKS[k : k + 1] * 255, frame_time_ms=None, delta_cm=SPACING[0] / 10,
                           SeriesInstanceUID="1.2.3.4.5.6.7", InstanceNumber=int(k) + 1)
        del ds.NumberOfFrames
        write_dicom(folder / f"IM{k:04d}", ds)
    return [folder], {"view": "A4C", "fps": FPS}


CASES: dict[str, Callable[[Path], tuple[list[Path], dict[str, Any] | None]]] = {
    "npy": lambda tmp: ([write_npy(tmp / "a4c.npy", MASKS)], CALLER),
    "npy_labels_3": lambda tmp: ([write_npy(tmp / "a4c.npy", (MASKS * 3 + (1 - MASKS) * 0).astype(np.int16))],
                                 {**CALLER, "label": 3}),
    "nifti": lambda tmp: ([write_nifti(tmp / "a4c.nii", MASKS, SPACING)], {"view": "A4C", "fps": FPS}),
    "nifti_gz_4d_dt": lambda tmp: ([write_nifti(tmp / "a4c.nii.gz", MASKS, SPACING, dt_s=1 / FPS)], {"view": "A4C"}),
    "nifti_flipped_x": lambda tmp: ([write_nifti(tmp / "a.nii.gz", MASKS, SPACING, flip_x=True)], {"view": "A4C",
                                                                                                     "fps": FPS}),
    "nifti_flipped_y_swapped": lambda tmp: ([write_nifti(tmp / "a.nii.gz", MASKS, SPACING, flip_y=True, swap=True)],
                                            {"view": "A4C", "fps": FPS}),
    "png_folder": lambda tmp: ([write_png_folder(tmp / "a4c_pngs", MASKS)], CALLER),
    "png_zip": lambda tmp: ([write_png_zip(tmp / "frames.zip", MASKS)], CALLER),
    "dicom_native": _dicom("native"),
    "dicom_rle": _dicom("rle"),
    "dicom_jpeg_baseline": _dicom("jpeg"),
    "dicom_single_frame_series": _single_frame_series,
    "mp4_h264": lambda tmp: ([write_video(tmp / "a4c.mp4", MASKS * 255, int(FPS))],
                             {"view": "A4C", "pixel_spacing_mm": list(SPACING)}),
    "avi_ffv1": lambda tmp: ([write_video(tmp / "a4c.avi", MASKS * 255, int(FPS), codec="ffv1")],
                             {"view": "A4C", "pixel_spacing_mm": list(SPACING)}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_round_trip_gives_the_same_masks(case: str, tmp_path: Path) -> None:
    paths, manifest = CASES[case](tmp_path)
    study = load_any(paths, manifest)
    assert study.view_names == ["A4C"]
    view = study.views["A4C"]
    np.testing.assert_array_equal(view.masks, MASKS)
    assert view.pixel_spacing_mm == pytest.approx(SPACING, rel=1e-6)
    assert view.fps == pytest.approx(FPS, rel=1e-3)
    report = study.meta["ingest"]
    assert report["sources"][0]["n_frames"] == len(MASKS)
    json.dumps(study.meta)  # the report is plain JSON


def test_bundle_directory_and_zip_pass_through(tmp_path: Path) -> None:
    study = Study({"A2C": ViewSequence("A2C", MASKS, SPACING, FPS)})
    save_study(study, tmp_path / "bundle")
    with zipfile.ZipFile(tmp_path / "bundle.zip", "w") as zf:
        for f in (tmp_path / "bundle").iterdir():
            zf.write(f, f"bundle/{f.name}")
    for p in (tmp_path / "bundle", tmp_path / "bundle.zip"):
        loaded = load_any([p])
        np.testing.assert_array_equal(loaded.views["A2C"].masks, MASKS)
        assert loaded.meta["ingest"]["sources"][0]["format"] == "echo4d-study"


def test_several_views_with_a_per_file_manifest(tmp_path: Path) -> None:
    write_npy(tmp_path / "a4c.npy", MASKS)
    write_png_folder(tmp_path / "two", MASKS[:6])
    write_nifti(tmp_path / "a3c.nii.gz", MASKS[:5], (0.4, 0.5))
    manifest = {"fps": 30, "pixel_spacing_mm": [0.3, 0.3],
                "files": {"a4c.npy": {"view": "A4C"}, "two": {"view": "A2C", "fps": 50},
                          "a3c*": {"view": "A3C"}}}
    study = load_any([tmp_path / "a4c.npy", tmp_path / "two", tmp_path / "a3c.nii.gz"], manifest)
    assert study.view_names == ["A4C", "A2C", "A3C"]
    assert [study.views[v].n_frames for v in study.view_names] == [8, 6, 5]
    assert study.views["A2C"].fps == 50 and study.views["A4C"].fps == 30
    assert study.views["A3C"].pixel_spacing_mm == (0.3, 0.3)  # caller wins over the header ...
    assert any("differs from the file's" in w for w in study.meta["ingest"]["warnings"])  # ... and says so


def test_embedded_manifest_in_a_zip(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "upload.zip", "w") as zf:
        zf.writestr("manifest.json", json.dumps({"view": "A2C", "fps": 20, "pixel_spacing_mm": [0.5, 0.5]}))
        zf.writestr("masks.npy", _npy_bytes(MASKS))
        zf.writestr("README.txt", "not an image")
    study = load_any([tmp_path / "upload.zip"])
    assert study.views["A2C"].fps == 20
    assert any("skipped 1 file" in w for w in study.meta["ingest"]["warnings"])


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_supplied_masks_win_over_segmentation(tmp_path: Path) -> None:
    calls: list[int] = []

    class Recording:
        name = "recording"

        def segment(self, frames: np.ndarray) -> np.ndarray:
            calls.append(len(frames))
            return np.ones_like(frames)

        def probabilities(self, frames: np.ndarray) -> np.ndarray:
            calls.append(len(frames))
            return np.ones(frames.shape, np.float32)

    bmode = (np.random.default_rng(1).integers(0, 255, MASKS.shape)).astype(np.uint8)
    write_npy(tmp_path / "bmode.npy", bmode)
    write_npy(tmp_path / "masks.npy", MASKS)
    result = ingest([tmp_path / "bmode.npy", tmp_path / "masks.npy"], CALLER, segmenter=Recording())
    np.testing.assert_array_equal(result.study.views["A4C"].masks, MASKS)
    assert calls == []
    assert any("masks always win" in w for w in result.report.warnings)
    assert "A4C" in result.images  # kept for the preview overlay


def test_bmode_goes_through_the_segmenter(tmp_path: Path) -> None:
    class Threshold:
        name = "threshold"

        def segment(self, frames: np.ndarray) -> np.ndarray:
            return (self.probabilities(frames) > 0.5).astype(np.uint8)

        def probabilities(self, frames: np.ndarray) -> np.ndarray:
            return np.where(frames < 100, 0.9, 0.0).astype(np.float32)

    rng = np.random.default_rng(2)
    bmode = np.where(MASKS == 1, 40, 200).astype(np.int16) + rng.integers(-20, 20, MASKS.shape)
    write_npy(tmp_path / "bmode.npy", bmode.clip(0, 255).astype(np.uint8))
    study = load_any([tmp_path / "bmode.npy"], CALLER, segmenter=Threshold())
    np.testing.assert_array_equal(study.views["A4C"].masks, MASKS)
    assert study.meta["ingest"]["sources"][0]["segmenter"] == "threshold"
    # |2p - 1| over the candidate region (p > 0.1): 0.8 everywhere the threshold saw cavity
    assert study.meta["ingest"]["sources"][0]["segmentation_confidence"] == pytest.approx(0.8)


def test_specks_are_removed_with_a_warning(tmp_path: Path) -> None:
    noisy = MASKS.copy()
    noisy[:, 60:62, 2:4] = 1  # a 4-px speck far from the cavity
    study = load_any([write_npy(tmp_path / "m.npy", noisy)], CALLER)
    np.testing.assert_array_equal(study.views["A4C"].masks, MASKS)
    assert any("specks" in w for w in study.meta["ingest"]["warnings"])


def test_pydicom_ybr_cine_spacing_trap_and_timing() -> None:
    from pydicom import examples

    class Centre:
        name = "centre-box"

        def segment(self, frames: np.ndarray) -> np.ndarray:
            return (self.probabilities(frames) > 0.5).astype(np.uint8)

        def probabilities(self, frames: np.ndarray) -> np.ndarray:
            m = np.zeros(frames.shape, np.float32)
            m[:, 80:160, 130:190] = 1.0
            return m

    result = ingest([examples.get_path("ybr_color")], view="A4C", segmenter=Centre())
    view = result.study.views["A4C"]
    assert view.masks.shape == (30, 240, 320)
    assert view.pixel_spacing_mm == pytest.approx((1.02099, 1.02099), rel=1e-4)  # 2 × 0.0510 cm, not 0.51 mm
    assert view.fps == pytest.approx(1000 / 33.333, rel=1e-4)
    src = result.study.meta["ingest"]["sources"][0]
    assert src["spacing_source"] == "ultrasound_region_rescaled_2x"
    assert src["photometric"] == "YBR_FULL_422" and src["transfer_syntax"].startswith("JPEG Baseline")
    assert any("downscaled 2×" in w for w in result.report.warnings)
    grey = result.images["A4C"]
    assert grey.dtype == np.uint8 and grey.shape == (30, 240, 320)
    assert grey[:, :10, :30].max() == 0  # burned-in text outside the ultrasound region is blanked
    assert grey[:, 60:180, 100:220].mean() > 10  # the sector itself is kept


@pytest.fixture
def reference_masks() -> Path:
    path = REAL_ECHO / "segmentation_reference.nii.gz"
    if not path.is_file():
        pytest.skip(f"real reference masks not available ({path}): /work/shared is absent")
    return path


def test_real_reference_segmentation(reference_masks: Path) -> None:
    import nibabel as nib

    study = load_any([reference_masks], {"view": "A4C", "fps": 25, "label": 1})
    view = study.views["A4C"]
    assert view.masks.shape == (25, 416, 513)
    assert view.pixel_spacing_mm == pytest.approx((0.4556355, 0.4556355), rel=1e-6)
    expected = (np.asarray(nib.load(reference_masks).dataobj).transpose(2, 1, 0) == 1).astype(np.uint8)
    areas = view.masks.reshape(25, -1).sum(axis=1)
    assert np.abs(areas - expected.reshape(25, -1).sum(axis=1)).max() <= 0.01 * areas.max()  # specks/holes only
    assert int(np.argmax(areas)) == 24 and int(np.argmin(areas)) == 10  # as in the data's NOTICE
    rows = np.flatnonzero(view.masks[0].any(axis=1))
    assert 100 <= rows[0] <= 120 and 265 <= rows[-1] <= 285  # apex near the top: row 0 is the near field


def test_real_reference_flipped_affine_gives_the_same_bundle(reference_masks: Path, tmp_path: Path) -> None:
    import nibabel as nib

    img = nib.load(reference_masks)
    data = np.asarray(img.dataobj)
    aff = img.affine.copy()
    aff[0, 0] = -aff[0, 0]
    aff[0, 3] = -aff[0, 0] * (data.shape[0] - 1)
    flipped = nib.Nifti1Image(np.ascontiguousarray(data[::-1]), aff, img.header)
    nib.save(flipped, tmp_path / "flipped.nii.gz")
    a = load_any([reference_masks], {"view": "A4C", "fps": 25})
    b = load_any([tmp_path / "flipped.nii.gz"], {"view": "A4C", "fps": 25})
    np.testing.assert_array_equal(a.views["A4C"].masks, b.views["A4C"].masks)
    save_study(a, tmp_path / "a")
    save_study(b, tmp_path / "b")
    np.testing.assert_array_equal(load_study(tmp_path / "a").views["A4C"].masks,
                                  load_study(tmp_path / "b").views["A4C"].masks)
