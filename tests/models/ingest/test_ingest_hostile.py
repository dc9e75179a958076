"""Hostile files given to ``load_any``: zip attacks, absurd or broken DICOM, pickles and lying .npy headers,
hostile manifests, and no patient value in any error.

Every attack must end in a typed :class:`InputError` with its stable code (or, where the input is
merely odd, a valid study), within seconds, and without allocating what the input declares.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile_kit import MiB, npy_bytes, patch_entry, refused, symlink_member, traced, zip_bytes
from ingest_builders import FAKE_PHI, FAKE_UIDS, base_masks, dicom_dataset, png_bytes, write_nifti, write_video

from models.archive import MAX_ZIP_MEMBERS
from models.errors import ErrorCode, InputError
from models.ingest import load_any
from models.study import Study, StudyLimits

MASKS = base_masks()
CALLER: dict[str, Any] = {"view": "A4C", "pixel_spacing_mm": [0.3, 0.3], "fps": 25}


def reject(paths: list[Path], manifest: dict[str, Any] | None = None,
           limits: StudyLimits = StudyLimits()) -> tuple[InputError, int]:
    return refused(lambda: load_any(paths, manifest, limits=limits))


# ----------------------------------------------------------------------------- zips given to load_any


NPY = npy_bytes(MASKS)


def masks_zip(*extra: tuple[str | zipfile.ZipInfo, bytes], npy: bytes = NPY) -> bytes:
    return zip_bytes([("a4c/m.npy", npy), *extra])


def _ratio_lie() -> bytes:
    data = masks_zip()
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("a4c/m.npy")
    return patch_entry(data, b"a4c/m.npy", file_size=info.compress_size * 2000)


def _over_budget() -> bytes:
    """Four members of 2.5 MB zeros: each under the per-file cap, together beyond three views' budget."""
    return zip_bytes([(f"v{k}.npy", b"\x93NUMPY" + bytes(2_500_000)) for k in range(4)])


def _lying_directory(n: int) -> bytes:
    """``n`` empty entries whose end record declares 3: zipfile would still build all ``n`` entry objects."""
    names = [b"%d" % k for k in range(n)]
    local = [struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(m), 0) + m for m in names]
    offsets = np.cumsum([0] + [len(x) for x in local])[:-1]
    cd = b"".join(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(m), 0, 0, 0, 0, 0,
                              int(o)) + m for m, o in zip(names, offsets, strict=True))
    body = b"".join(local)
    return body + cd + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 3, 3, len(cd), len(body), 0)


SMALL = StudyLimits(max_voxels_per_view=200_000)

ZIP_ATTACKS: dict[str, tuple[Callable[[], bytes], ErrorCode, StudyLimits]] = {
    "path_traversal": (lambda: masks_zip(("../m.npy", NPY)), ErrorCode.UNSAFE_ARCHIVE, StudyLimits()),
    "absolute_path": (lambda: masks_zip(("/etc/passwd", b"x")), ErrorCode.UNSAFE_ARCHIVE, StudyLimits()),
    "windows_drive": (lambda: masks_zip(("C:\\x.npy", NPY)), ErrorCode.UNSAFE_ARCHIVE, StudyLimits()),
    "symlink": (lambda: zip_bytes([symlink_member("a4c/m.npy", b"/etc/passwd")]), ErrorCode.UNSAFE_ARCHIVE,
                StudyLimits()),
    "duplicate_names": (lambda: masks_zip(("a4c/m.npy", NPY)), ErrorCode.UNSAFE_ARCHIVE, StudyLimits()),
    "thousands_of_tiny_files": (lambda: masks_zip(*((f"t/{k}.txt", b"") for k in range(MAX_ZIP_MEMBERS))),
                                ErrorCode.UNSAFE_ARCHIVE, StudyLimits()),
    "count_lies_about_a_huge_directory": (lambda: _lying_directory(60000), ErrorCode.UNSAFE_ARCHIVE, StudyLimits()),
    "encrypted": (lambda: patch_entry(masks_zip(), b"a4c/m.npy", flags=0x1), ErrorCode.UNSAFE_ARCHIVE,
                  StudyLimits()),
    "bzip2": (lambda: zip_bytes([("a4c/m.npy", NPY)], zipfile.ZIP_BZIP2), ErrorCode.UNSUPPORTED_FORMAT,
              StudyLimits()),
    "ratio_beyond_deflate": (_ratio_lie, ErrorCode.UNSAFE_ARCHIVE, StudyLimits()),
    "declares_4_GiB": (lambda: patch_entry(masks_zip(), b"a4c/m.npy", file_size=0xFFFFFFF0), ErrorCode.TOO_LARGE,
                       StudyLimits()),
    "members_beyond_the_budget": (_over_budget, ErrorCode.UNSAFE_ARCHIVE, SMALL),
    "non_utf8_name_flagged_utf8": (
        lambda: patch_entry(masks_zip(("abcd", b"x")), b"abcd", flags=0x800, new_name=b"\xff\xfe\xfd\xfc"),
        ErrorCode.CORRUPT_FILE, StudyLimits()),
    "only_a_nested_zip": (lambda: zip_bytes([("inner.zip", masks_zip())]), ErrorCode.UNSUPPORTED_FORMAT,
                          StudyLimits()),
    "lying_member_streamed": (lambda: patch_entry(masks_zip(npy=bytes(32 * MiB)), b"a4c/m.npy", file_size=1000),
                              ErrorCode.CORRUPT_FILE, StudyLimits()),
}


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("name", sorted(ZIP_ATTACKS))
def test_zip_attack_is_refused_with_its_code(name: str, tmp_path: Path) -> None:
    build, code, limits = ZIP_ATTACKS[name]
    path = tmp_path / "upload.zip"
    path.write_bytes(build())
    err, peak = reject([path], CALLER, limits)
    assert err.code is code, str(err)
    assert peak < 12 * MiB  # never the 32 MiB / 4 GiB the members claim or hold


def test_nested_zip_is_skipped_not_opened(tmp_path: Path) -> None:
    path = tmp_path / "outer.zip"
    path.write_bytes(masks_zip(("inner.zip", masks_zip(("../evil", b"x")))))
    study = load_any([path], CALLER)
    np.testing.assert_array_equal(study.views["A4C"].masks, MASKS)


# ----------------------------------------------------------------------------- DICOM


def dicom_bytes(mutate: Callable[[Any], None] | None = None, frames: Any = None, **kw: Any) -> bytes:
    ds = dicom_dataset(MASKS * 255 if frames is None else frames, **kw)
    # fixed UIDs: the builder's random ones change the byte layout that the re-labelled-syntax cases parse
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    if "SeriesInstanceUID" in ds:
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.2"
    if mutate:
        mutate(ds)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def with_transfer_syntax(raw: bytes, uid: bytes) -> bytes:
    """Rewrite the file meta TransferSyntaxUID (and the meta group length) of a Part 10 file, data untouched."""
    at = raw.index(b"\x02\x00\x10\x00UI")
    old_len = struct.unpack_from("<H", raw, at + 6)[0]
    value = uid + b"\x00" * (len(uid) % 2)
    out = bytearray(raw[:at + 6] + struct.pack("<H", len(value)) + value + raw[at + 8 + old_len :])
    assert out[132:140] == b"\x02\x00\x00\x00UL\x04\x00"
    struct.pack_into("<I", out, 140, struct.unpack_from("<I", out, 140)[0] + len(value) - old_len)
    return bytes(out)


def _set(**attrs: Any) -> Callable[[Any], None]:
    def apply(ds: Any) -> None:
        for k, v in attrs.items():
            setattr(ds, k, v)

    return apply


def _region(**attrs: Any) -> Callable[[Any], None]:
    def apply(ds: Any) -> None:
        for k, v in attrs.items():
            setattr(ds.SequenceOfUltrasoundRegions[0], k, v)

    return apply


def _delta(value: float) -> Callable[[Any], None]:
    return _region(PhysicalDeltaX=value, PhysicalDeltaY=value)


def _timing(**attrs: Any) -> Callable[[Any], None]:
    def apply(ds: Any) -> None:
        del ds.FrameTime
        for k, v in attrs.items():
            setattr(ds, k, v)

    return apply


def _deflate_bomb(n_pixel_bytes: int = 64_000_000) -> bytes:
    """Deflated Explicit VR LE whose body inflates to 64 MB from ~64 KB (pydicom would inflate it unbounded)."""
    raw = dicom_bytes()
    meta_end = 144 + struct.unpack_from("<I", raw, 140)[0]
    pixels_at = raw.index(b"\xe0\x7f\x10\x00", meta_end)
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = [co.compress(raw[meta_end:pixels_at] + b"\xe0\x7f\x10\x00OB\x00\x00" + struct.pack("<I", n_pixel_bytes))]
    zeros = bytes(MiB)
    body += [co.compress(zeros) for _ in range(n_pixel_bytes // MiB)] + [co.compress(bytes(n_pixel_bytes % MiB))]
    return with_transfer_syntax(raw[:meta_end], b"1.2.840.10008.1.2.1.99") + b"".join(body) + co.flush()


def _truncated(fraction: float) -> Callable[[], bytes]:
    def build() -> bytes:
        raw = dicom_bytes()
        return raw[: max(132, int(len(raw) * fraction))]

    return build


def _bad_vr(tag: bytes) -> Callable[[], bytes]:
    """An attribute ingest reads whose explicit VR is not a VR (pydicom raises only when the value is read)."""

    def build() -> bytes:
        raw = dicom_bytes(series_description="A4C")
        at = raw.index(tag)
        return raw[: at + 4] + b"ZZ" + raw[at + 6 :]

    return build


def _as_text_inf(header: bytes) -> Callable[[], bytes]:
    """The element ``header`` (tag + VR + 2-byte length) re-encoded as the decimal string "inf" (VR DS)."""

    def build() -> bytes:
        raw = dicom_bytes()
        at = raw.index(header)
        size = struct.unpack_from("<H", raw, at + 6)[0]
        return raw[:at] + header[:4] + b"DS\x04\x00inf " + raw[at + 8 + size :]

    return build


A4C_ONLY: dict[str, Any] = {"view": "A4C"}
DICOM_ATTACKS: dict[str, tuple[Callable[[], bytes], ErrorCode]] = {
    "rows_cols_frames_65535x65535x10000": (lambda: dicom_bytes(_set(Rows=65535, Columns=65535, NumberOfFrames=10000)),
                                          ErrorCode.TOO_LARGE),
    "a_billion_frames": (lambda: dicom_bytes(_set(NumberOfFrames=10**9)), ErrorCode.TOO_LARGE),
    "rgb_32_bit_2048x2048x500": (lambda: dicom_bytes(_set(SamplesPerPixel=3, BitsAllocated=32, NumberOfFrames=500,
                                                          Rows=2048, Columns=2048)), ErrorCode.TOO_LARGE),
    "negative_frame_count": (lambda: dicom_bytes(_set(NumberOfFrames="-5")), ErrorCode.BAD_DIMENSIONS),
    "zero_rows": (lambda: dicom_bytes(_set(Rows=0)), ErrorCode.BAD_DIMENSIONS),
    "rows_as_text_inf": (_as_text_inf(b"\x28\x00\x10\x00US\x02\x00"), ErrorCode.CORRUPT_FILE),
    "truncated_after_preamble": (_truncated(0.0), ErrorCode.CORRUPT_FILE),
    "truncated_in_header": (_truncated(0.05), ErrorCode.CORRUPT_FILE),
    "truncated_in_pixels": (_truncated(0.5), ErrorCode.CORRUPT_FILE),
    "truncated_last_byte": (_truncated(0.9999), ErrorCode.CORRUPT_FILE),
    "not_dicom_after_magic": (lambda: b"\x00" * 128 + b"DICM" + b"\x13\x37" * 500,
                              ErrorCode.UNSUPPORTED_FORMAT),  # parses to garbage elements, none of them pixels
    "syntax_says_jpeg_pixels_native": (lambda: with_transfer_syntax(dicom_bytes(), b"1.2.840.10008.1.2.4.50"),
                                       ErrorCode.CORRUPT_FILE),
    "syntax_says_rle_pixels_native": (lambda: with_transfer_syntax(dicom_bytes(), b"1.2.840.10008.1.2.5"),
                                      ErrorCode.CORRUPT_FILE),
    "syntax_says_big_endian": (lambda: with_transfer_syntax(dicom_bytes(), b"1.2.840.10008.1.2.2"),
                               ErrorCode.CORRUPT_FILE),  # little-endian data read as big-endian: no valid data set
    "syntax_unknown": (lambda: with_transfer_syntax(dicom_bytes(), b"9.9.999.1"),
                       ErrorCode.UNSUPPORTED_TRANSFER_SYNTAX),
    "syntax_of_5000_characters": (lambda: with_transfer_syntax(dicom_bytes(), b"1." * 2500),
                                  ErrorCode.UNSUPPORTED_TRANSFER_SYNTAX),
    "syntax_deflated_bomb": (_deflate_bomb, ErrorCode.UNSUPPORTED_TRANSFER_SYNTAX),
    "malformed_region_value": (_bad_vr(b"\x18\x00\x24\x60US"), ErrorCode.CORRUPT_FILE),
    "malformed_series_description": (_bad_vr(b"\x08\x00\x3e\x10LO"), ErrorCode.CORRUPT_FILE),
    "physical_delta_nan": (lambda: dicom_bytes(_delta(math.nan)), ErrorCode.BAD_SPACING),
    "physical_delta_inf": (lambda: dicom_bytes(_delta(math.inf)), ErrorCode.BAD_SPACING),
    "physical_delta_minus_inf": (lambda: dicom_bytes(_delta(-math.inf)), ErrorCode.BAD_SPACING),
    "physical_delta_zero": (lambda: dicom_bytes(_delta(0.0)), ErrorCode.BAD_SPACING),
    "physical_delta_1e-300": (lambda: dicom_bytes(_delta(1e-300)), ErrorCode.BAD_SPACING),
    "physical_delta_1e300": (lambda: dicom_bytes(_delta(1e300)), ErrorCode.BAD_SPACING),
    "region_bounds_4_billion": (lambda: dicom_bytes(_region(RegionLocationMaxX1=2**32 - 1,
                                                            RegionLocationMaxY1=2**32 - 1)), ErrorCode.BAD_SPACING),
    "frame_time_zero": (lambda: dicom_bytes(frame_time_ms=0.0), ErrorCode.BAD_TIMING),
    "frame_time_nan": (lambda: dicom_bytes(frame_time_ms=math.nan), ErrorCode.BAD_TIMING),
    "frame_time_negative": (lambda: dicom_bytes(frame_time_ms=-40.0), ErrorCode.BAD_TIMING),
    "frame_time_inf": (lambda: dicom_bytes(frame_time_ms=math.inf), ErrorCode.BAD_TIMING),
    "frame_time_denormal": (lambda: dicom_bytes(frame_time_ms=1e-320), ErrorCode.BAD_TIMING),
    "cine_rate_1e9": (lambda: dicom_bytes(_timing(CineRate=10**9)), ErrorCode.BAD_TIMING),
    "frame_time_vector_nan": (lambda: dicom_bytes(_timing(FrameTimeVector=[0.0] + [math.nan] * 7)),
                              ErrorCode.BAD_TIMING),
    "frame_time_vector_tiny": (lambda: dicom_bytes(_timing(FrameTimeVector=[0.0] + [1e-300] * 7)),
                               ErrorCode.BAD_TIMING),
}


@pytest.mark.filterwarnings("ignore:The value length")  # pydicom on the 5000-character transfer syntax UID
@pytest.mark.parametrize("name", sorted(DICOM_ATTACKS))
def test_dicom_attack_is_refused_before_decoding(name: str, tmp_path: Path) -> None:
    build, code = DICOM_ATTACKS[name]
    path = tmp_path / "scan.dcm"
    path.write_bytes(build())
    err, peak = reject([path], A4C_ONLY)
    assert err.code is code, str(err)
    assert peak < 3 * MiB  # headers only: no frame × rows × columns allocation, no 64 MB inflation


def test_dicom_series_beyond_the_frame_cap_is_refused_before_decoding(tmp_path: Path) -> None:
    paths = []
    for k in range(6):  # six single-frame files of one series (same SeriesInstanceUID)
        path = tmp_path / f"f{k}.dcm"
        path.write_bytes(dicom_bytes(_set(InstanceNumber=k + 1), frames=MASKS[k : k + 1] * 255))
        paths.append(path)
    err, _ = reject(paths, A4C_ONLY, StudyLimits(max_frames=4))
    assert err.code is ErrorCode.TOO_LARGE


CALLER_WINS: dict[str, tuple[Callable[[Any], None], str]] = {
    "physical_delta_nan": (_delta(math.nan), "pixel_spacing_mm"),
    "physical_delta_zero": (_delta(0.0), "pixel_spacing_mm"),
    "region_without_cm_units": (_region(PhysicalUnitsXDirection=2), "pixel_spacing_mm"),
    "frame_time_denormal": (_set(FrameTime=1e-320), "fps"),
    "cine_rate_1e9": (_timing(CineRate=10**9), "fps"),
}


@pytest.mark.parametrize("name", sorted(CALLER_WINS))
def test_caller_values_replace_unusable_dicom_metadata(name: str, tmp_path: Path) -> None:
    """The errors tell the user to pass spacing/fps explicitly; doing so must then work."""
    mutate, key = CALLER_WINS[name]
    path = tmp_path / "scan.dcm"
    path.write_bytes(dicom_bytes(mutate))
    view = load_any([path], {"view": "A4C", key: CALLER[key]}).views["A4C"]  # the other value: from the file
    assert view.pixel_spacing_mm == pytest.approx((0.3, 0.3)) and view.fps == pytest.approx(25.0)


def test_unreadable_region_bound_counts_as_absent(tmp_path: Path) -> None:
    """A region bound stored as the text "inf" (int() would overflow) is ignored, not a crash."""
    path = tmp_path / "scan.dcm"
    path.write_bytes(_as_text_inf(b"\x18\x00\x1c\x60UL\x04\x00")())
    assert load_any([path], A4C_ONLY).views["A4C"].pixel_spacing_mm == pytest.approx((0.3, 0.3))


def test_negative_physical_delta_uses_its_magnitude_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "scan.dcm"
    path.write_bytes(dicom_bytes(_delta(-0.03)))
    study = load_any([path], A4C_ONLY)
    assert study.views["A4C"].pixel_spacing_mm == pytest.approx((0.3, 0.3))
    assert any("negative" in w for w in study.meta["ingest"]["warnings"])


# ----------------------------------------------------------------------------- .npy, PNG, NIfTI, video


class _Trap:
    """Unpickling this calls ``os.mkdir(marker)``: proof that a loader unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _png_claiming(rows: int, cols: int) -> bytes:
    raw = bytearray(png_bytes(MASKS[0] * 255))
    struct.pack_into(">II", raw, 16, cols, rows)  # IHDR width, height (its CRC is now wrong too)
    return bytes(raw)


def _nifti_gz_bad_block(tmp: Path) -> bytes:
    """A NIfTI gzip whose header inflates fine and whose later deflate block is invalid (zlib.error)."""
    nii = write_nifti(tmp / "m.nii", MASKS, (0.3, 0.3)).read_bytes()
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = co.compress(nii[:2000]) + co.flush(zlib.Z_FULL_FLUSH) + b"\xff\xff\xff\xff"
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + body


def _video_unknown_codec(tmp: Path) -> bytes:
    return write_video(tmp / "v.mp4", MASKS * 255, 25).read_bytes().replace(b"avc1", b"zzzz")


FILE_ATTACKS: dict[str, tuple[str, Callable[[Path], bytes], ErrorCode]] = {
    "npy_huge_shape_no_data": ("m.npy", lambda t: _npy_header("|u1", (500, 300, 300)) + bytes(64),
                               ErrorCode.CORRUPT_FILE),
    "npy_shape_wraps_int64": ("m.npy", lambda t: _npy_header("|u1", (2, 2**62, 4)) + bytes(64), ErrorCode.TOO_LARGE),
    "npy_zero_d": ("m.npy", lambda t: npy_bytes(np.uint8(1)), ErrorCode.BAD_DIMENSIONS),
    "npy_object_dtype": ("m.npy", lambda t: npy_bytes(np.array([_Trap(t / "unpickled")] * 4, dtype=object)),
                         ErrorCode.BAD_DTYPE),
    "npy_object_cine": ("m.npy", lambda t: npy_bytes(np.full((4, 32, 32), _Trap(t / "unpickled"), dtype=object)),
                        ErrorCode.BAD_DTYPE),
    "png_ihdr_claims_60000x60000": ("f.png", lambda t: _png_claiming(60000, 60000), ErrorCode.TOO_LARGE),
    "nifti_gz_invalid_deflate_block": ("m.nii.gz", _nifti_gz_bad_block, ErrorCode.CORRUPT_FILE),
    "video_codec_unknown": ("v.mp4", _video_unknown_codec, ErrorCode.UNSUPPORTED_FORMAT),
}


@pytest.mark.parametrize("name", sorted(FILE_ATTACKS))
def test_file_attack_is_refused_before_allocation(name: str, tmp_path: Path) -> None:
    file_name, build, code = FILE_ATTACKS[name]
    path = tmp_path / "in" / file_name
    path.parent.mkdir()
    path.write_bytes(build(tmp_path))
    err, peak = reject([path if not file_name.endswith(".png") else path.parent], CALLER)
    assert err.code is code, str(err)
    assert peak < 3 * MiB
    assert not (tmp_path / "unpickled").exists(), "a pickle was executed"


@pytest.mark.parametrize("dtype", [">u2", ">i8", "<i4", "|b1"])
@pytest.mark.parametrize("fortran", [False, True])
def test_unusual_but_valid_npy_layouts_give_the_same_masks(dtype: str, fortran: bool, tmp_path: Path) -> None:
    arr = MASKS.astype(dtype)
    path = tmp_path / "m.npy"
    path.write_bytes(npy_bytes(np.asfortranarray(arr) if fortran else arr))
    np.testing.assert_array_equal(load_any([path], CALLER).views["A4C"].masks, MASKS)


# ----------------------------------------------------------------------------- manifests


@pytest.mark.parametrize(("key", "value", "code"), [
    ("pixel_spacing_mm", [math.nan, 0.3], ErrorCode.BAD_SPACING),
    ("pixel_spacing_mm", [math.inf, 0.3], ErrorCode.BAD_SPACING),
    ("pixel_spacing_mm", [0.3, -math.inf], ErrorCode.BAD_SPACING),
    ("pixel_spacing_mm", [10**400, 0.3], ErrorCode.BAD_SPACING),
    ("fps", math.nan, ErrorCode.BAD_TIMING),
    ("fps", math.inf, ErrorCode.BAD_TIMING),
    ("fps", 10**400, ErrorCode.BAD_TIMING),
    ("fps", 5e-324, ErrorCode.BAD_TIMING),
    ("fps", -0.0, ErrorCode.BAD_TIMING),
])
def test_non_finite_manifest_values_are_rejected(key: str, value: Any, code: ErrorCode, tmp_path: Path) -> None:
    path = tmp_path / "m.npy"
    path.write_bytes(NPY)
    err, _ = reject([path], {**CALLER, key: value})
    assert err.code is code, str(err)


EMBEDDED: dict[str, tuple[bytes, ErrorCode]] = {
    "deeply_nested": (b"[" * 60000, ErrorCode.INVALID_MANIFEST),
    "integer_with_5000_digits": (b'{"fps": ' + b"9" * 5000 + b"}", ErrorCode.INVALID_MANIFEST),
    "huge": (b'{"view": "A4C", "pad": "' + b" " * (70 * 1024) + b'"}', ErrorCode.TOO_LARGE),
    "not_an_object": (b'["A4C"]', ErrorCode.INVALID_MANIFEST),
    "nan_spacing": (b'{"view": "A4C", "fps": 25, "pixel_spacing_mm": [NaN, 0.3]}', ErrorCode.BAD_SPACING),
    "infinite_fps": (b'{"view": "A4C", "fps": Infinity, "pixel_spacing_mm": [0.3, 0.3]}', ErrorCode.BAD_TIMING),
}


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_manifest_attack_is_rejected(name: str, tmp_path: Path) -> None:
    raw, code = EMBEDDED[name]
    path = tmp_path / "upload.zip"
    path.write_bytes(zip_bytes([("manifest.json", raw), ("m.npy", NPY)]))
    err, _ = reject([path])
    assert err.code is code, str(err)


# ----------------------------------------------------------------------------- privacy

# Distinctive parts of the planted values ("Doe" alone would match "does").
SECRETS = [*FAKE_PHI.values(), *FAKE_UIDS.values(), "Doe^", "Janet", "99887766", "19450317", "5551234"]
PHI_DICOM: dict[str, tuple[Callable[[Any], None], dict[str, Any] | None]] = {
    "absurd_size": (_set(Rows=65535, Columns=65535, NumberOfFrames=10000), A4C_ONLY),
    "nan_spacing": (_delta(math.nan), A4C_ONLY),
    "no_timing": (_set(FrameTime=0.0), A4C_ONLY),
    "unexplained_region": (_region(RegionLocationMaxX1=300), A4C_ONLY),
    "frame_count_mismatch": (_set(NumberOfFrames=12), A4C_ONLY),
    "deflated_syntax": (lambda ds: setattr(ds.file_meta, "TransferSyntaxUID", "1.2.840.10008.1.2.1.99"), A4C_ONLY),
    "name_in_description_no_view": (_set(SeriesDescription="Doe^Janet PHI7731"), None),
    "name_in_description_with_view": (_set(SeriesDescription="Doe^Janet PHI7731 A2C"), None),  # loads
}


@pytest.mark.parametrize("name", sorted(PHI_DICOM))
def test_bad_dicom_errors_and_logs_carry_no_patient_values(name: str, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "scan.dcm"
    mutate, manifest = PHI_DICOM[name]
    path.write_bytes(dicom_bytes(mutate))
    assert b"Doe^Janet" in path.read_bytes() or name == "deflated_syntax"  # (deflated: the values are compressed)
    caplog.set_level(logging.DEBUG)
    out, _ = traced(lambda: load_any([path], manifest))
    text = str(out) if isinstance(out, InputError) else json.dumps(out.meta) if isinstance(out, Study) else ""
    assert text, f"unexpected result {out!r}"
    leaked = [s for s in SECRETS if s.lower() in (text + caplog.text).lower()]
    assert leaked == []


def test_error_for_a_damaged_dicom_is_about_the_file_not_its_contents(tmp_path: Path) -> None:
    raw = dicom_bytes()
    path = tmp_path / "scan.dcm"
    path.write_bytes(raw[: len(raw) // 3])
    err, _ = reject([path], A4C_ONLY)
    assert not any(s.lower() in str(err).lower() for s in SECRETS)
