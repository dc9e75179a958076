"""POST-time preflight agrees with ingest: what it refuses from headers, ingest refuses with the same code."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ingest_builders import base_masks, dicom_dataset, write_dicom, write_nifti, write_npy, write_png_folder

from models.errors import InputError
from models.ingest import load_any
from models.ingest.preflight import preflight_files

FULL = {"view": "A4C", "pixel_spacing_mm": [0.5, 0.5], "fps": 30.0}


def _without(*keys: str) -> dict[str, Any]:
    return {k: v for k, v in FULL.items() if k not in keys}


Build = Callable[[Path], list[Path]]
CASES: dict[str, tuple[Build, dict[str, Any] | None, str | None]] = {
    "npy-complete": (lambda d: [write_npy(d / "a.npy", base_masks())], FULL, None),
    "npy-no-view": (lambda d: [write_npy(d / "a.npy", base_masks())], _without("view"), "missing_view"),
    "npy-no-spacing": (lambda d: [write_npy(d / "a.npy", base_masks())], _without("pixel_spacing_mm"), "bad_spacing"),
    "npy-no-fps": (lambda d: [write_npy(d / "a.npy", base_masks())], _without("fps"), "bad_timing"),
    "npy-one-frame": (lambda d: [write_npy(d / "a.npy", base_masks()[:1])], FULL, "single_frame"),
    "nifti-spacing-from-header": (lambda d: [write_nifti(d / "a.nii.gz", base_masks(), (0.4, 0.4))],
                                  _without("pixel_spacing_mm"), None),
    "nifti-no-frame-time": (lambda d: [write_nifti(d / "a.nii.gz", base_masks(), (0.4, 0.4))],
                            _without("fps"), "bad_timing"),
    "nifti-frame-time-in-header": (lambda d: [write_nifti(d / "a.nii", base_masks(), (0.4, 0.4), dt_s=0.04)],
                                   _without("fps", "pixel_spacing_mm"), None),
    "nifti-no-view": (lambda d: [write_nifti(d / "a.nii.gz", base_masks(), (0.4, 0.4))], _without("view"),
                      "missing_view"),
    "dicom-complete": (lambda d: [write_dicom(d / "a.dcm", dicom_dataset(base_masks() * 255,
                                                                        series_description="A4C"))], None, None),
    "dicom-no-view": (lambda d: [write_dicom(d / "a.dcm", dicom_dataset(base_masks() * 255))], None,
                      "missing_view"),
    "dicom-view-from-manifest": (lambda d: [write_dicom(d / "a.dcm", dicom_dataset(base_masks() * 255))],
                                 {"view": "A2C"}, None),
    "dicom-no-spacing": (lambda d: [write_dicom(d / "a.dcm", dicom_dataset(base_masks() * 255, delta_cm=None,
                                                                          series_description="A4C"))],
                         None, "bad_spacing"),
    "dicom-no-timing": (lambda d: [write_dicom(d / "a.dcm", dicom_dataset(base_masks() * 255, frame_time_ms=None,
                                                                         series_description="A4C"))],
                        None, "bad_timing"),
    "png-complete": (lambda d: sorted(write_png_folder(d / "png", base_masks()).iterdir()), FULL, None),
    "png-no-spacing": (lambda d: sorted(write_png_folder(d / "png", base_masks()).iterdir()),
                       _without("pixel_spacing_mm"), "bad_spacing"),
}


def _code(call: Callable[[], Any]) -> str | None:
    try:
        call()
    except InputError as exc:
        return exc.code.value
    return None


def _preflight(paths: list[Path], manifest: dict[str, Any] | None) -> str | None:
    streams = [p.open("rb") for p in paths]
    try:
        code = _code(lambda: preflight_files([(p.name, s) for p, s in zip(paths, streams, strict=True)], manifest))
        assert all(s.tell() == 0 for s in streams)  # rewound for the upload that follows
        return code
    finally:
        for s in streams:
            s.close()


@pytest.mark.parametrize("case", sorted(CASES))
def test_preflight_refuses_what_ingest_refuses(tmp_path: Path, case: str):
    build, manifest, expected = CASES[case]
    paths = build(tmp_path)
    assert _preflight(paths, manifest) == expected
    assert _code(lambda: load_any(paths, manifest)) == expected  # the worker would have failed the same way


def test_a_single_frame_dicom_series_counts_its_instances(tmp_path: Path):
    masks = base_masks() * 255
    paths = [write_dicom(tmp_path / f"{k}.dcm", dicom_dataset(masks[k : k + 1], series_description="A4C",
                                                              SeriesInstanceUID="1.2.3.4", InstanceNumber=k + 1))
             for k in range(3)]
    with paths[0].open("rb") as one:
        assert _code(lambda: preflight_files([("0.dcm", one)], None)) == "single_frame"
    for manifest in (None, {"fps": 25}):
        assert _preflight(paths, manifest) == _code(lambda m=manifest: load_any(paths, m))  # type: ignore[misc]


def test_an_unreadable_npy_header_is_corrupt(tmp_path: Path):
    bad = tmp_path / "a.npy"
    bad.write_bytes(b"\x93NUMPY garbage")
    with bad.open("rb") as f:
        assert _code(lambda: preflight_files([("a.npy", f)], FULL)) == "corrupt_file"
    assert _code(lambda: load_any([bad], FULL)) == "corrupt_file"
