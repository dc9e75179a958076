"""Every bad input is rejected with a typed InputError and its stable code (one table)."""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ingest_builders import base_masks, dicom_dataset, png_bytes, write_dicom, write_nifti, write_npy, write_video

from models.errors import ErrorCode, InputError
from models.ingest import load_any
from models.study import StudyLimits

MASKS = base_masks()
CALLER = {"view": "A4C", "pixel_spacing_mm": [0.3, 0.3], "fps": 25}


@dataclass
class Case:
    build: Callable[[Path], list[Path]]
    manifest: dict[str, Any] | None = field(default_factory=lambda: dict(CALLER))
    limits: StudyLimits = field(default_factory=StudyLimits)
    segmenter: Any = None


def _npy(arr: Any, name: str = "m.npy") -> Callable[[Path], list[Path]]:
    return lambda tmp: [write_npy(tmp / name, np.asarray(arr))]


def _dcm(name: str = "x.dcm", mutate: Callable[[Any], None] | None = None, **kw: Any) -> Callable[[Path], list[Path]]:
    def build(tmp: Path) -> list[Path]:
        ds = dicom_dataset(kw.pop("frames", MASKS * 255), **kw)
        if mutate:
            mutate(ds)
        return [write_dicom(tmp / name, ds)]

    return build


def _bytes(data: bytes, name: str) -> Callable[[Path], list[Path]]:
    def build(tmp: Path) -> list[Path]:
        (tmp / name).write_bytes(data)
        return [tmp / name]

    return build


def _truncated_dicom(tmp: Path) -> list[Path]:
    p = _dcm()(tmp)[0]
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return [p]


def _two_blobs() -> np.ndarray:
    m = np.zeros((4, 64, 64), np.uint8)
    m[:, 5:25, 5:25] = 1
    m[:, 40:60, 40:60] = 1
    return m


def _huge_npy_header(tmp: Path) -> list[Path]:
    header = {"descr": "|u1", "fortran_order": False, "shape": (100000, 4096, 4096)}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    (tmp / "huge.npy").write_bytes(buf.getvalue() + b"\x00" * 64)
    return [tmp / "huge.npy"]


def _set_huge(ds: Any) -> None:
    ds.NumberOfFrames = 100000
    ds.Rows, ds.Columns = 4096, 4096


def _lying_jpeg(ds: Any) -> None:
    from pydicom.encaps import encapsulate, generate_frames

    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    sof = frames[0].find(b"\xff\xc0")
    bad = bytearray(frames[0])
    bad[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)  # SOF claims 60000×60000
    ds.PixelData = encapsulate([bytes(bad), *frames[1:]])


def _htj2k(ds: Any) -> None:
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 60] * int(ds.NumberOfFrames))
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.201"  # HTJ2K: no decoder installed


def _short_frame_time_vector(ds: Any) -> None:
    del ds.FrameTime
    ds.FrameTimeVector = [0.0] + [40.0] * 3


def _fewer_frames_than_declared(ds: Any) -> None:
    ds.NumberOfFrames = 12  # the pixel data holds 8 whole frames


def _bad_region_bounds(ds: Any) -> None:
    ds.SequenceOfUltrasoundRegions[0].RegionLocationMaxX1 = 300  # 48 columns: no whole-number factor fits


def _one_frame_video(tmp: Path) -> list[Path]:
    return [write_video(tmp / "one.mp4", MASKS[:1] * 255, 25)]


def _png_sizes_differ(tmp: Path) -> list[Path]:
    d = tmp / "pngs"
    d.mkdir()
    (d / "f1.png").write_bytes(png_bytes(MASKS[0] * 255))
    (d / "f2.png").write_bytes(png_bytes(np.zeros((32, 32), np.uint8)))
    return [d]


def _nifti_3d_plus_t(tmp: Path) -> list[Path]:
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((32, 32, 4, 5), np.uint8), np.eye(4)), tmp / "vol.nii.gz")
    return [tmp / "vol.nii.gz"]


def _corrupt_gz_nifti(tmp: Path) -> list[Path]:
    p = write_nifti(tmp / "m.nii.gz", MASKS, (0.3, 0.3))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) - 40])
    return [p]


def _gzip_bomb(tmp: Path) -> list[Path]:
    p = write_nifti(tmp / "m.nii", MASKS, (0.3, 0.3))
    (tmp / "bomb.nii.gz").write_bytes(gzip.compress(p.read_bytes() + b"\x00" * 6_000_000))
    return [tmp / "bomb.nii.gz"]


def _two_inputs_one_view(tmp: Path) -> list[Path]:
    return [write_npy(tmp / "a.npy", MASKS), write_npy(tmp / "b.npy", MASKS)]


def _zip_member_too_large(tmp: Path) -> list[Path]:
    with zipfile.ZipFile(tmp / "big.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("m.npy", b"\x93NUMPY" + b"\x00" * 3_000_000)
    return [tmp / "big.zip"]


def _many_big_files(tmp: Path) -> list[Path]:
    return [write_npy(tmp / f"v{k}.npy", np.zeros((10, 500, 500), np.uint8)) for k in range(4)]  # 4 × 2.5 MB


SMALL = StudyLimits(max_voxels_per_view=200_000)

CASES: dict[str, tuple[Case, ErrorCode]] = {
    "empty_masks": (Case(_npy(np.zeros((4, 32, 32), np.uint8))), ErrorCode.EMPTY_MASK),
    "one_empty_frame": (Case(_npy(np.concatenate([MASKS, MASKS[:1] * 0]))), ErrorCode.EMPTY_MASK),
    "all_foreground": (Case(_npy(np.ones((4, 32, 32), np.uint8))), ErrorCode.FULL_MASK),
    "no_lv_label": (Case(_npy(MASKS * 2)), ErrorCode.NO_LV_LABEL),
    "label_not_present": (Case(_npy(MASKS), manifest={**CALLER, "label": 3}), ErrorCode.NO_LV_LABEL),
    "disconnected_blobs": (Case(_npy(_two_blobs())), ErrorCode.DISCONNECTED_MASK),
    "wrong_dimensionality_4d": (Case(_npy(np.zeros((2, 3, 32, 32), np.uint8))), ErrorCode.BAD_DIMENSIONS),
    "wrong_dimensionality_1d": (Case(_npy(np.zeros(32, np.uint8))), ErrorCode.BAD_DIMENSIONS),
    "tiny_frames": (Case(_npy(np.ones((4, 8, 8), np.uint8))), ErrorCode.BAD_DIMENSIONS),
    "single_2d_mask": (Case(_npy(MASKS[0])), ErrorCode.SINGLE_FRAME),
    "one_frame_video": (Case(_one_frame_video, {"view": "A4C", "pixel_spacing_mm": [0.3, 0.3]}),
                        ErrorCode.SINGLE_FRAME),
    "frame_time_vector_mismatch": (Case(_dcm(mutate=_short_frame_time_vector), {"view": "A4C"}),
                                   ErrorCode.FRAME_COUNT_MISMATCH),
    "fewer_frames_than_declared": (Case(_dcm(mutate=_fewer_frames_than_declared), {"view": "A4C"}),
                                   ErrorCode.FRAME_COUNT_MISMATCH),
    "missing_spacing": (Case(_npy(MASKS), {"view": "A4C", "fps": 25}), ErrorCode.BAD_SPACING),
    "zero_spacing": (Case(_npy(MASKS), {**CALLER, "pixel_spacing_mm": [0, 0.3]}), ErrorCode.BAD_SPACING),
    "nan_spacing": (Case(_npy(MASKS), {**CALLER, "pixel_spacing_mm": [float("nan"), 0.3]}), ErrorCode.BAD_SPACING),
    "negative_spacing": (Case(_npy(MASKS), {**CALLER, "pixel_spacing_mm": [-0.3, 0.3]}), ErrorCode.BAD_SPACING),
    "dicom_without_spacing": (Case(_dcm(delta_cm=None), {"view": "A4C"}), ErrorCode.BAD_SPACING),
    "dicom_region_bounds_unexplained": (Case(_dcm(mutate=_bad_region_bounds), {"view": "A4C"}),
                                        ErrorCode.BAD_SPACING),
    "missing_timing": (Case(_npy(MASKS), {"view": "A4C", "pixel_spacing_mm": [0.3, 0.3]}), ErrorCode.BAD_TIMING),
    "zero_fps": (Case(_npy(MASKS), {**CALLER, "fps": 0}), ErrorCode.BAD_TIMING),
    "dicom_without_timing": (Case(_dcm(frame_time_ms=None), {"view": "A4C"}), ErrorCode.BAD_TIMING),
    "unsupported_transfer_syntax": (Case(_dcm(mutate=_htj2k), {"view": "A4C"}),
                                    ErrorCode.UNSUPPORTED_TRANSFER_SYNTAX),
    "truncated_dicom": (Case(_truncated_dicom, {"view": "A4C"}), ErrorCode.CORRUPT_FILE),
    "jpeg_frame_lies_about_its_size": (Case(_dcm(syntax="jpeg", mutate=_lying_jpeg), {"view": "A4C"}),
                                       ErrorCode.CORRUPT_FILE),
    "non_dicom_bytes": (Case(_bytes(np.random.default_rng(0).bytes(4096), "scan.dcm")), ErrorCode.UNSUPPORTED_FORMAT),
    "dicm_magic_then_garbage": (Case(_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 300, "scan.dcm")),
                                ErrorCode.CORRUPT_FILE),
    "truncated_npy": (Case(_bytes(b"\x93NUMPY\x01\x00", "m.npy")), ErrorCode.CORRUPT_FILE),
    "truncated_nifti_gz": (Case(_corrupt_gz_nifti, {"view": "A4C", "fps": 25}), ErrorCode.CORRUPT_FILE),
    "absurd_dicom_header": (Case(_dcm(mutate=_set_huge), {"view": "A4C"}), ErrorCode.TOO_LARGE),
    "absurd_npy_header": (Case(_huge_npy_header), ErrorCode.TOO_LARGE),
    "video_beyond_limits": (Case(_one_frame_video, {"view": "A4C", "pixel_spacing_mm": [0.3, 0.3]},
                                 StudyLimits(max_side=32)), ErrorCode.TOO_LARGE),
    "gzip_bomb": (Case(_gzip_bomb, {"view": "A4C", "fps": 25}, SMALL), ErrorCode.TOO_LARGE),
    "zip_member_too_large": (Case(_zip_member_too_large, limits=SMALL), ErrorCode.TOO_LARGE),
    "inputs_add_up_beyond_three_views": (Case(_many_big_files, limits=SMALL), ErrorCode.TOO_LARGE),
    "unknown_view_name": (Case(_npy(MASKS), {**CALLER, "view": "PLAX"}), ErrorCode.UNKNOWN_VIEW),
    "view_not_given": (Case(_dcm(), None), ErrorCode.MISSING_VIEW),
    "bmode_without_segmenter": (Case(_npy(np.random.default_rng(0).integers(0, 255, (4, 32, 32), np.uint8))),
                                ErrorCode.NO_SEGMENTER),
    "png_frames_differ_in_size": (Case(_png_sizes_differ), ErrorCode.BAD_DIMENSIONS),
    "nifti_3d_plus_t_volume": (Case(_nifti_3d_plus_t), ErrorCode.BAD_DIMENSIONS),
    "two_inputs_for_one_view": (Case(_two_inputs_one_view), ErrorCode.INVALID_STUDY),
    "bad_manifest_kind": (Case(_npy(MASKS), {**CALLER, "kind": "mesh"}), ErrorCode.INVALID_MANIFEST),
    "unknown_manifest_key": (Case(_npy(MASKS), {**CALLER, "spacing": [1, 1]}), ErrorCode.INVALID_MANIFEST),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_rejected_with_its_code(name: str, tmp_path: Path) -> None:
    case, code = CASES[name]
    paths = case.build(tmp_path)
    with pytest.raises(InputError) as err:
        load_any(paths, case.manifest, segmenter=case.segmenter, limits=case.limits)
    assert err.value.code == code, str(err.value)
    assert len(err.value.detail) > 20  # an actionable sentence, not a bare code


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_any([tmp_path / "nope.dcm"])
    assert err.value.code == ErrorCode.INVALID_STUDY


def test_nifti_header_is_checked_before_inflating(tmp_path: Path) -> None:
    import nibabel as nib

    big = nib.Nifti1Image(np.zeros((600, 600, 200), np.uint8), np.eye(4))  # 72 M voxels, compresses to ~70 KB
    nib.save(big, tmp_path / "big.nii.gz")
    with pytest.raises(InputError) as err:
        load_any([tmp_path / "big.nii.gz"], CALLER)
    assert err.value.code == ErrorCode.TOO_LARGE and "beyond the limits" in err.value.detail
