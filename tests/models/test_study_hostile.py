"""Hostile study bundles: zip bombs and unsafe archives, hostile folders, manifests and .npy masks.

Every attack must end in a typed :class:`InputError` with its stable code (or, where the input is
merely odd, a valid study), quickly, and without allocating what the input declares.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile_kit import MiB, deadline, npy_bytes, patch_entry, raw_entries_zip, refused, symlink_member, zip_bytes

from models.archive import MAX_ZIP_MEMBERS
from models.errors import ErrorCode, InputError
from models.study import Study, StudyLimits, ViewSequence, load_study, save_study


def _masks(t: int = 4, h: int = 64, w: int = 48) -> np.ndarray:
    rr, cc = np.mgrid[0:h, 0:w]
    return np.stack([((rr - 30) ** 2 / (20 - k) ** 2 + (cc - 24) ** 2 / 12**2) <= 1 for k in range(t)]).astype(np.uint8)


MASKS = _masks()


def _manifest(**a4c: Any) -> dict[str, Any]:
    view = {"masks": "A4C.npy", "pixel_spacing_mm": [0.5, 0.5], "fps": 30.0, **a4c}
    return {"format": "echo4d-study/1", "views": {"A4C": view}}


MANIFEST = json.dumps(_manifest()).encode()
NPY = npy_bytes(MASKS)


def load_hostile(path: Path, limits: StudyLimits = StudyLimits(), seconds: float = 5.0) -> tuple[InputError, int]:
    """Load ``path``, expecting an InputError; returns it and the peak traced allocation in bytes."""
    return refused(lambda: load_study(path, limits), seconds)


# ----------------------------------------------------------------------------- zip archives


def bundle_zip(*extra: tuple[str | zipfile.ZipInfo, bytes], npy: bytes = NPY) -> bytes:
    return zip_bytes([("study.json", MANIFEST), ("A4C.npy", npy), *extra])


def _bzip2() -> bytes:
    return zip_bytes([("study.json", MANIFEST), ("A4C.npy", NPY)], method=zipfile.ZIP_BZIP2)


def _lzma() -> bytes:
    return zip_bytes([("study.json", MANIFEST), ("A4C.npy", NPY)], method=zipfile.ZIP_LZMA)


def _ratio_lie() -> bytes:
    """The A4C member declares 2000× its compressed size: more than deflate can ever achieve."""
    data = bundle_zip()
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("A4C.npy")
    return patch_entry(data, b"A4C.npy", file_size=info.compress_size * 2000)


def _corrupt_deflate() -> bytes:
    data = bytearray(bundle_zip())
    at = data.find(b"A4C.npy", 30) + len("A4C.npy")  # the member's compressed data
    data[at + 8 : at + 40] = bytes(range(32))
    return bytes(data)


ZIP_ATTACKS: dict[str, tuple[Callable[[], bytes], ErrorCode]] = {
    "path_traversal": (lambda: bundle_zip(("../x", b"x")), ErrorCode.UNSAFE_ARCHIVE),
    "deep_traversal": (lambda: bundle_zip(("a/../../x", b"x")), ErrorCode.UNSAFE_ARCHIVE),
    "absolute_path": (lambda: bundle_zip(("/etc/passwd", b"x")), ErrorCode.UNSAFE_ARCHIVE),
    "windows_drive": (lambda: bundle_zip(("C:\\x", b"x")), ErrorCode.UNSAFE_ARCHIVE),
    "windows_traversal": (lambda: bundle_zip(("..\\x", b"x")), ErrorCode.UNSAFE_ARCHIVE),
    "manifest_via_traversal": (lambda: zip_bytes([("../study.json", MANIFEST), ("../A4C.npy", NPY)]),
                               ErrorCode.UNSAFE_ARCHIVE),
    "symlink_member": (lambda: zip_bytes([("study.json", MANIFEST), symlink_member("A4C.npy", b"/etc/passwd")]),
                       ErrorCode.UNSAFE_ARCHIVE),
    "symlink_extra": (lambda: bundle_zip(symlink_member("link", b"/")), ErrorCode.UNSAFE_ARCHIVE),
    "nul_in_name": (lambda: patch_entry(bundle_zip(("abc.npy", b"x")), b"abc.npy", new_name=b"a\x00c.npy"),
                    ErrorCode.UNSAFE_ARCHIVE),
    "duplicate_member": (lambda: bundle_zip(("A4C.npy", b"another body")), ErrorCode.UNSAFE_ARCHIVE),
    "duplicate_manifest": (lambda: bundle_zip(("study.json", b"{}")), ErrorCode.UNSAFE_ARCHIVE),
    "too_many_members": (lambda: bundle_zip(*((f"f{k}", b"") for k in range(MAX_ZIP_MEMBERS))),
                         ErrorCode.UNSAFE_ARCHIVE),
    "directory_of_60000_entries": (lambda: raw_entries_zip(60000), ErrorCode.UNSAFE_ARCHIVE),
    "directory_of_60000_entries_declared_as_3": (lambda: raw_entries_zip(60000, declared=3),
                                                 ErrorCode.UNSAFE_ARCHIVE),
    "zip64_declares_a_billion_entries": (lambda: raw_entries_zip(3, zip64_declared=10**9), ErrorCode.UNSAFE_ARCHIVE),
    "encrypted_member": (lambda: patch_entry(bundle_zip(), b"A4C.npy", flags=0x1), ErrorCode.UNSAFE_ARCHIVE),
    "bzip2_member": (_bzip2, ErrorCode.UNSUPPORTED_FORMAT),
    "lzma_member": (_lzma, ErrorCode.UNSUPPORTED_FORMAT),
    "ratio_beyond_deflate": (_ratio_lie, ErrorCode.UNSAFE_ARCHIVE),
    "declares_4_GiB": (lambda: patch_entry(bundle_zip(), b"A4C.npy", file_size=0xFFFFFFF0), ErrorCode.TOO_LARGE),
    "non_utf8_name_flagged_utf8": (
        lambda: patch_entry(bundle_zip(("abcd", b"x")), b"abcd", flags=0x800, new_name=b"\xff\xfe\xfd\xfc"),
        ErrorCode.CORRUPT_FILE),
    "corrupt_deflate_stream": (_corrupt_deflate, ErrorCode.CORRUPT_FILE),
    "nested_zip_as_masks": (lambda: bundle_zip(npy=bundle_zip()), ErrorCode.CORRUPT_FILE),
    "only_a_nested_bundle": (lambda: zip_bytes([("inner.zip", bundle_zip())]), ErrorCode.INVALID_MANIFEST),
}


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize("name", sorted(ZIP_ATTACKS))
def test_zip_attack_is_refused_with_its_code(name: str, tmp_path: Path) -> None:
    build, code = ZIP_ATTACKS[name]
    path = tmp_path / "study.zip"
    path.write_bytes(build())
    err, peak = load_hostile(path)
    assert err.code is code, str(err)
    assert peak < 8 * MiB


def test_honest_zip_bomb_is_refused_from_its_declared_size(tmp_path: Path) -> None:
    """A highly compressible member (8 MiB of zeros → ~8 KiB) beyond the cap: refused before inflating."""
    path = tmp_path / "bomb.zip"
    path.write_bytes(bundle_zip(npy=b"\x93NUMPY" + bytes(8 * MiB)))
    err, peak = load_hostile(path, StudyLimits(max_voxels_per_view=MiB))
    assert err.code is ErrorCode.TOO_LARGE and peak < MiB


def test_member_lying_about_its_size_is_stopped_while_streaming(tmp_path: Path) -> None:
    """32 MiB of zeros declared as 1000 bytes: inflation stops at the declared size (CRC then fails)."""
    data = patch_entry(bundle_zip(npy=bytes(32 * MiB)), b"A4C.npy", file_size=1000)
    path = tmp_path / "liar.zip"
    path.write_bytes(data)
    err, peak = load_hostile(path)
    assert err.code is ErrorCode.CORRUPT_FILE
    assert peak < 4 * MiB  # one 1 MiB streaming chunk, not 32 MiB


def test_raw_zip_builder_is_a_valid_zip() -> None:
    """The byte-level builder above writes archives zipfile reads, including its zip64 end records."""
    for data in (raw_entries_zip(3), raw_entries_zip(3, zip64_declared=3)):
        assert zipfile.ZipFile(io.BytesIO(data)).namelist() == ["0", "1", "2"]


def test_odd_but_harmless_archives_still_load(tmp_path: Path) -> None:
    """A legacy (cp437) non-UTF-8 name and a folder entry are not attacks; the bundle loads."""
    data = patch_entry(bundle_zip(("abcd", b"x"), ("docs/", b"")), b"abcd", new_name=b"\xff\xfe\xfd\xfc")
    path = tmp_path / "ok.zip"
    path.write_bytes(data)
    study = load_study(path)
    np.testing.assert_array_equal(study.views["A4C"].masks, MASKS)


# ----------------------------------------------------------------------------- bundle folders


def _folder(tmp: Path, manifest: bytes = MANIFEST) -> Path:
    d = tmp / "bundle"
    save_study(Study({"A4C": ViewSequence("A4C", MASKS, (0.5, 0.5), 30.0)}), d)
    (d / "study.json").write_bytes(manifest)
    return d


def _replace(name: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        (d / name).unlink()
        make(d / name)

    return apply


def _sparse(size: int) -> Callable[[Path], None]:
    def make(p: Path) -> None:
        with p.open("wb") as f:
            f.truncate(size)

    return make


def _loop(p: Path) -> None:
    p.symlink_to(p.name)


def _link_outside(p: Path) -> None:
    """A link to a valid mask file beside (not inside) the bundle folder: never to a system file."""
    outside = p.parent.parent / "outside.npy"
    outside.write_bytes(NPY)
    p.symlink_to(outside)


FOLDER_ATTACKS: dict[str, tuple[Callable[[Path], None], ErrorCode]] = {
    "masks_link_outside": (_replace("A4C.npy", _link_outside), ErrorCode.INVALID_STUDY),
    "masks_link_to_dev_zero": (_replace("A4C.npy", lambda p: p.symlink_to("/dev/zero")), ErrorCode.INVALID_STUDY),
    "masks_fifo": (_replace("A4C.npy", lambda p: os.mkfifo(p)), ErrorCode.INVALID_STUDY),
    "manifest_fifo": (_replace("study.json", lambda p: os.mkfifo(p)), ErrorCode.INVALID_STUDY),
    "masks_symlink_loop": (_replace("A4C.npy", _loop), ErrorCode.INVALID_STUDY),
    "masks_is_a_folder": (_replace("A4C.npy", lambda p: p.mkdir()), ErrorCode.INVALID_STUDY),
    "masks_sparse_1_GiB": (_replace("A4C.npy", _sparse(1 << 30)), ErrorCode.TOO_LARGE),
    "manifest_sparse_1_GiB": (_replace("study.json", _sparse(1 << 30)), ErrorCode.TOO_LARGE),
}


@pytest.mark.parametrize("name", sorted(FOLDER_ATTACKS))
def test_folder_attack_is_refused_without_reading_it(name: str, tmp_path: Path) -> None:
    damage, code = FOLDER_ATTACKS[name]
    d = _folder(tmp_path)
    damage(d)
    err, peak = load_hostile(d)
    assert err.code is code, str(err)
    assert peak < MiB


def test_links_inside_the_folder_are_followed(tmp_path: Path) -> None:
    d = _folder(tmp_path)
    (d / "A4C.npy").rename(d / "real.npy")
    (d / "A4C.npy").symlink_to("real.npy")
    np.testing.assert_array_equal(load_study(d).views["A4C"].masks, MASKS)


# ----------------------------------------------------------------------------- manifests

_BAD_JSON_NUMBERS = [("NaN", ErrorCode.BAD_SPACING, ErrorCode.BAD_TIMING), ("Infinity", ErrorCode.BAD_SPACING,
                     ErrorCode.BAD_TIMING), ("-Infinity", ErrorCode.BAD_SPACING, ErrorCode.BAD_TIMING),
                     ("1e400", ErrorCode.BAD_SPACING, ErrorCode.BAD_TIMING),
                     ("1" + "0" * 400, ErrorCode.BAD_SPACING, ErrorCode.BAD_TIMING),
                     ("5e-324", ErrorCode.BAD_SPACING, ErrorCode.BAD_TIMING),
                     ("true", ErrorCode.BAD_SPACING, ErrorCode.BAD_TIMING),
                     ("-0.0", ErrorCode.BAD_SPACING, ErrorCode.BAD_TIMING)]


@pytest.mark.parametrize(("number", "spacing_code", "fps_code"), _BAD_JSON_NUMBERS, ids=[n[0][:8] for n in
                                                                                          _BAD_JSON_NUMBERS])
def test_non_finite_or_absurd_numbers_are_rejected(number: str, spacing_code: ErrorCode, fps_code: ErrorCode,
                                                   tmp_path: Path) -> None:
    """Python's json accepts NaN/Infinity; spacing and fps must still be positive, finite and plausible."""
    for key, code in (("pixel_spacing_mm", spacing_code), ("fps", fps_code)):
        doc = _manifest(**{key: "@@"})
        value = f"[{number}, 0.5]" if key == "pixel_spacing_mm" else number
        d = _folder(tmp_path, json.dumps(doc).replace('"@@"', value).encode())
        err, _ = load_hostile(d)
        assert err.code is code and err.field == f"views.A4C.{key}", str(err)


@pytest.mark.parametrize("fps", [1e9, 2000.5, 0.05])
def test_implausible_frame_rates_are_rejected(fps: float, tmp_path: Path) -> None:
    err, _ = load_hostile(_folder(tmp_path, json.dumps(_manifest(fps=fps)).encode()))
    assert err.code is ErrorCode.BAD_TIMING


_DEEP = b'{"format": "echo4d-study/1", "views": ' + b"[" * 30000 + b"]" * 30000 + b"}"
MANIFEST_ATTACKS: dict[str, tuple[bytes, ErrorCode]] = {
    "deeply_nested_array": (b"[" * 60000, ErrorCode.INVALID_MANIFEST),
    "deeply_nested_value": (_DEEP, ErrorCode.INVALID_MANIFEST),
    "huge_manifest": (b'{"pad": "' + b" " * (70 * 1024) + b'"}', ErrorCode.TOO_LARGE),
    "integer_with_5000_digits": (b'{"format": ' + b"9" * 5000 + b"}", ErrorCode.INVALID_MANIFEST),
    "array": (b"[]", ErrorCode.INVALID_MANIFEST),
    "string": (b'"echo4d-study/1"', ErrorCode.INVALID_MANIFEST),
    "number": (b"42", ErrorCode.INVALID_MANIFEST),
    "null": (b"null", ErrorCode.INVALID_MANIFEST),
    "utf16": ('{"format": "echo4d-study/1"}'.encode("utf-16"), ErrorCode.INVALID_MANIFEST),
    "huge_format_string": (json.dumps({"format": "x" * 60000}).encode(), ErrorCode.INVALID_MANIFEST),
    "views_not_an_object": (json.dumps({"format": "echo4d-study/1", "views": [1, 2]}).encode(),
                            ErrorCode.MISSING_VIEW),
    "nul_in_masks_name": (json.dumps(_manifest(masks="a\x00.npy")).encode(), ErrorCode.INVALID_MANIFEST),
    "very_long_masks_name": (json.dumps(_manifest(masks="a" * 5000 + ".npy")).encode(), ErrorCode.INVALID_MANIFEST),
    "absolute_masks_name": (json.dumps(_manifest(masks="/etc/x.npy")).encode(), ErrorCode.INVALID_MANIFEST),
    "drive_masks_name": (json.dumps(_manifest(masks="C:x.npy")).encode(), ErrorCode.INVALID_MANIFEST),
    "backslash_traversal": (json.dumps(_manifest(masks="..\\x.npy")).encode(), ErrorCode.INVALID_MANIFEST),
}


@pytest.mark.parametrize("name", sorted(MANIFEST_ATTACKS))
@pytest.mark.parametrize("container", ["folder", "zip"])
def test_manifest_attack_is_rejected(name: str, container: str, tmp_path: Path) -> None:
    raw, code = MANIFEST_ATTACKS[name]
    if container == "folder":
        path = _folder(tmp_path, raw)
    else:
        path = tmp_path / "s.zip"
        path.write_bytes(zip_bytes([("study.json", raw), ("A4C.npy", NPY)]))
    err, _ = load_hostile(path)
    assert err.code is code, str(err)


# ----------------------------------------------------------------------------- .npy masks


class _Trap:
    """Unpickling this calls ``os.mkdir(marker)``: proof that a loader unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.marker),)


def _header(descr: str, shape: tuple[int, ...], fortran: bool = False, version: tuple[int, int] = (1, 0)) -> bytes:
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": fortran, "shape": shape}
    (np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0)(buf, header)
    return buf.getvalue()


NPY_ATTACKS: dict[str, tuple[bytes, ErrorCode]] = {
    "declares_100000x4096x4096": (_header("|u1", (100000, 4096, 4096)) + bytes(64), ErrorCode.TOO_LARGE),
    "declares_70000x70000_2d": (_header("|u1", (70000, 70000)) + bytes(64), ErrorCode.TOO_LARGE),
    "declares_10**12_1d": (_header("|u1", (10**12,)) + bytes(64), ErrorCode.TOO_LARGE),
    "shape_wraps_int64": (_header("|u1", (2, 2**62, 4)) + bytes(64), ErrorCode.TOO_LARGE),
    "within_limits_but_no_data": (_header("|u1", (500, 300, 300)) + bytes(64), ErrorCode.CORRUPT_FILE),
    "negative_shape": (_header("|u1", (-1, 64, 48)) + bytes(64), ErrorCode.CORRUPT_FILE),
    "zero_d": (npy_bytes(np.uint8(1)), ErrorCode.BAD_DIMENSIONS),
    "unicode_dtype": (npy_bytes(np.full((4, 64, 48), "1")), ErrorCode.BAD_DTYPE),
    "structured_dtype": (npy_bytes(np.zeros((4, 64, 48), dtype=[("a", "u1")])), ErrorCode.BAD_DTYPE),
    "complex_dtype": (npy_bytes(MASKS.astype(np.complex64)), ErrorCode.BAD_DTYPE),
    "void_dtype_of_1_GiB_items": (_header("|V1073741824", (2, 16, 16)) + bytes(64), ErrorCode.BAD_DTYPE),
    "unknown_format_version": (b"\x93NUMPY\x09\x00" + NPY[8:], ErrorCode.CORRUPT_FILE),
    "header_of_20000_bytes": (b"\x93NUMPY\x02\x00" + struct.pack("<I", 20000) + b"{" + b" " * 19999,
                              ErrorCode.CORRUPT_FILE),
}


@pytest.mark.parametrize("name", sorted(NPY_ATTACKS))
def test_npy_attack_is_refused_before_allocation(name: str, tmp_path: Path) -> None:
    raw, code = NPY_ATTACKS[name]
    d = _folder(tmp_path)
    (d / "A4C.npy").write_bytes(raw)
    err, peak = load_hostile(d)
    assert err.code is code, str(err)
    assert peak < 2 * MiB  # nothing the header declares was allocated


@pytest.mark.parametrize("shape", [(1,), (4, 64, 48)])
def test_object_arrays_are_never_unpickled(shape: tuple[int, ...], tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    arr = np.empty(shape, dtype=object)
    arr.reshape(-1)[0] = _Trap(marker)
    d = _folder(tmp_path)
    (d / "A4C.npy").write_bytes(npy_bytes(arr))
    err, _ = load_hostile(d)
    assert err.code is ErrorCode.BAD_DTYPE
    assert not marker.exists()


@pytest.mark.parametrize("variant", ["fortran", "big_endian_u2", "big_endian_i8", "bool", "version_2"])
def test_unusual_but_valid_npy_layouts_load_exactly(variant: str, tmp_path: Path) -> None:
    if variant == "fortran":
        raw = npy_bytes(np.asfortranarray(MASKS))
    elif variant == "bool":
        raw = npy_bytes(MASKS.astype(bool))
    elif variant == "version_2":
        raw = _header("|u1", MASKS.shape, version=(2, 0)) + MASKS.tobytes()
    else:
        raw = npy_bytes(MASKS.astype(">u2" if variant == "big_endian_u2" else ">i8"))
    d = _folder(tmp_path)
    (d / "A4C.npy").write_bytes(raw)
    masks = load_study(d).views["A4C"].masks
    assert masks.dtype == np.uint8
    np.testing.assert_array_equal(masks, MASKS)


# ----------------------------------------------------------------------------- writing bundles


def test_save_study_replaces_planted_links_instead_of_writing_through_them(tmp_path: Path) -> None:
    """A folder holding ``A4C.npy -> elsewhere`` (and a FIFO as study.json): the outside file is untouched."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "A4C.npy").symlink_to(outside)
    os.mkfifo(out / "study.json")
    with deadline(5.0):
        save_study(Study({"A4C": ViewSequence("A4C", MASKS, (0.5, 0.5), 30.0)}), out)
    assert outside.read_text() == "precious"
    assert not (out / "A4C.npy").is_symlink() and stat.S_ISREG((out / "study.json").stat().st_mode)
    assert oct((out / "A4C.npy").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    np.testing.assert_array_equal(load_study(out).views["A4C"].masks, MASKS)
    assert sorted(p.name for p in out.iterdir()) == ["A4C.npy", "study.json"]  # no temporary left behind


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
