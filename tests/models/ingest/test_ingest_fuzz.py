"""Fuzz the loaders (hypothesis, derandomized): random bytes, mutated valid files, hostile JSON and DICOM values.

Property, for every example: ``load_any`` / ``load_study`` returns a valid :class:`Study` or raises a typed
:class:`InputError`; nothing else escapes, each call ends within ``SECONDS`` and its traced allocations stay
under ``MAX_PEAK`` (the inputs are a few kilobytes; a loader that believed a hostile header would allocate
megabytes to gigabytes).
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hostile_kit import npy_bytes, traced, zip_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_builders import base_masks, dicom_dataset, png_bytes, write_nifti, write_video

from models.errors import InputError
from models.ingest import load_any
from models.study import Study, ViewSequence, load_study, save_study

pytestmark = pytest.mark.filterwarnings("ignore")  # damaged files make pydicom/PIL/numpy warn: not failures here

SECONDS = 2.0
MAX_PEAK = 32 << 20
EXAMPLES = int(os.environ.get("ECHO4D_FUZZ_EXAMPLES", "50"))  # per property; the CI default keeps the file ~15 s
MASKS = base_masks()
CALLER: dict[str, Any] = {"view": "A4C", "pixel_spacing_mm": [0.3, 0.3], "fps": 25}
FUZZ = settings(deadline=None, derandomize=True, database=None, max_examples=EXAMPLES,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


def only_study_or_input_error(call: Callable[[], Study]) -> Study | InputError:
    """Run one loader call under the time and memory bounds; any exception but InputError propagates."""
    out, peak = traced(call, SECONDS, timeout_message="a loader call ran longer than {seconds} s",
                       max_message_chars=600)
    assert peak < MAX_PEAK, f"{peak} bytes allocated for a few-kilobyte input"
    if isinstance(out, Study):
        assert out.views, "a study always has at least one view"
        for view in out.views.values():
            assert view.masks.dtype == np.uint8 and view.masks.ndim == 3 and set(np.unique(view.masks)) == {0, 1}
            assert all(0 < s < math.inf for s in view.pixel_spacing_mm) and 0 < view.fps < math.inf
    else:
        assert out.code.value
    return out


# ----------------------------------------------------------------------------- valid seeds


def _dicom(syntax: str) -> bytes:
    ds = dicom_dataset(MASKS * 255, syntax=syntax, series_description="A4C")
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


MANIFEST = json.dumps({"format": "echo4d-study/1",
                       "views": {"A4C": {"masks": "A4C.npy", "pixel_spacing_mm": [0.3, 0.3], "fps": 25.0}}}).encode()


@functools.cache
def seed(kind: str, scratch: Path) -> tuple[str, bytes]:
    """(file name, bytes) of a small valid input of ``kind``."""
    scratch.mkdir(parents=True, exist_ok=True)
    if kind == "npy":
        return "m.npy", npy_bytes(MASKS)
    if kind.startswith("dicom"):
        return "scan.dcm", _dicom(kind.split("-")[1])
    if kind == "png-zip":
        return "pngs.zip", zip_bytes([(f"a4c/f{k}.png", png_bytes(m * 255)) for k, m in enumerate(MASKS)])
    if kind == "nifti-gz":
        return "m.nii.gz", write_nifti(scratch / "m.nii.gz", MASKS, (0.3, 0.3)).read_bytes()
    if kind == "mp4":
        return "clip.mp4", write_video(scratch / "clip.mp4", MASKS * 255, 25).read_bytes()
    if kind == "bundle-zip":
        return "study.zip", zip_bytes([("study.json", MANIFEST), ("A4C.npy", npy_bytes(MASKS))])
    raise ValueError(kind)


KINDS = ["npy", "dicom-native", "dicom-jpeg", "dicom-rle", "png-zip", "nifti-gz", "mp4", "bundle-zip"]
MAGICS = [b"\x93NUMPY\x01\x00", b"\x89PNG\r\n\x1a\n", b"PK\x03\x04", b"\x1f\x8b\x08", b"\x00" * 128 + b"DICM",
          b"\x00\x00\x00\x18ftypisom", b"RIFF\x00\x00\x00\x00AVI ", b"{", b"\x02\x00\x00\x00UL\x04\x00"]
EDGE_VALUES = [b"\x00", b"\xff", b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80",
               struct.pack("<d", math.nan), struct.pack("<d", math.inf), struct.pack("<d", -1.0), b"9" * 8]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` after 1–6 edits: bit flips, overwrites with edge values or random bytes, cuts, inserts, deletes."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        op = draw(st.sampled_from(["flip", "edge", "bytes", "cut", "insert", "delete"]))
        if op == "flip" and out:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "edge":
            value = draw(st.sampled_from(EDGE_VALUES))
            out[at : at + len(value)] = value
        elif op == "bytes":
            value = draw(st.binary(min_size=1, max_size=16))
            out[at : at + len(value)] = value
        elif op == "cut":
            del out[at:]
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=64))
        else:
            del out[at : at + draw(st.integers(1, 64))]
    return bytes(out)


# ----------------------------------------------------------------------------- properties


@pytest.fixture(scope="module", autouse=True)
def _warm_up(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Load every seed once, unbounded: first-use imports (pydicom handlers, codecs, PyAV) are not the loaders'
    time, and an alarm must never interrupt an import half-way."""
    scratch = tmp_path_factory.mktemp("warm-up")
    for kind in KINDS:
        name, data = seed(kind, scratch.parent / "fuzz-seeds")
        (scratch / name).write_bytes(data)
        load_any([scratch / name], None if kind == "bundle-zip" else CALLER)


@FUZZ
@given(head=st.sampled_from([b"", *MAGICS]), body=st.binary(max_size=2048),
       name=st.sampled_from(["x.npy", "x.dcm", "x.nii.gz", "x.png", "x.zip", "x.mp4", "x.json", "x"]))
def test_random_bytes_give_a_typed_error(head: bytes, body: bytes, name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(head + body)
    only_study_or_input_error(lambda: load_any([path], CALLER))


@pytest.mark.parametrize("kind", KINDS)
def test_mutated_valid_files_give_a_study_or_a_typed_error(kind: str, tmp_path: Path) -> None:
    name, data = seed(kind, tmp_path.parent / "fuzz-seeds")
    path = tmp_path / name
    manifest = None if kind == "bundle-zip" else CALLER
    path.write_bytes(data)
    assert isinstance(only_study_or_input_error(lambda: load_any([path], manifest)), Study)  # the seed is valid

    @FUZZ
    @given(mutated(data))
    def run(damaged: bytes) -> None:
        path.write_bytes(damaged)
        only_study_or_input_error(lambda: load_any([path], manifest))
        if kind == "bundle-zip":
            only_study_or_input_error(lambda: load_study(path))

    run()


def _bundle_dir(tmp: Path) -> Path:
    d = tmp / "bundle"
    if not d.exists():
        save_study(Study({"A4C": ViewSequence("A4C", MASKS, (0.3, 0.3), 25.0)}), d)
    return d


@FUZZ
@given(damaged=mutated(MANIFEST))
def test_mutated_study_json_gives_a_study_or_a_typed_error(damaged: bytes, tmp_path: Path) -> None:
    d = _bundle_dir(tmp_path)
    (d / "study.json").write_bytes(damaged)
    only_study_or_input_error(lambda: load_study(d))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() |
                    st.text(max_size=12) | st.sampled_from(["A4C", "A2C", "A3C", "A4C.npy", "../A4C.npy"]),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
FIELDS = ["format", "views", "views.A4C", "views.A4C.masks", "views.A4C.pixel_spacing_mm", "views.A4C.fps",
          "views.A2C", "views.PLAX"]


OPTION_KEYS = ["view", "pixel_spacing_mm", "fps", "label", "kind", "files"]


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(FIELDS), JSON), min_size=1, max_size=3),
       options=st.dictionaries(st.sampled_from(OPTION_KEYS), JSON, max_size=3))
def test_hostile_manifest_values_give_a_study_or_a_typed_error(edits: list[tuple[str, Any]], options: dict[str, Any],
                                                               tmp_path: Path) -> None:
    """Any JSON value (NaN and ±Infinity included: Python's json writes and reads them) in any manifest field,
    of the bundle's study.json and of the ingest manifest."""
    doc: dict[str, Any] = json.loads(MANIFEST)
    for dotted, value in edits:
        node = doc
        *parents, leaf = dotted.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[leaf] = value
    d = _bundle_dir(tmp_path)
    (d / "study.json").write_text(json.dumps(doc))
    only_study_or_input_error(lambda: load_study(d))
    npy = tmp_path / "m.npy"
    npy.write_bytes(npy_bytes(MASKS))
    only_study_or_input_error(lambda: load_any([npy], {**CALLER, **options}))


# DICOM attributes ingest interprets, by their explicit-VR little-endian element header in the seed file.
DICOM_TAGS = {
    "Rows": b"\x28\x00\x10\x00US", "Columns": b"\x28\x00\x11\x00US", "NumberOfFrames": b"\x28\x00\x08\x00IS",
    "SamplesPerPixel": b"\x28\x00\x02\x00US", "BitsAllocated": b"\x28\x00\x00\x01US",
    "PixelRepresentation": b"\x28\x00\x03\x01US", "PhotometricInterpretation": b"\x28\x00\x04\x00CS",
    "FrameTime": b"\x18\x00\x63\x10DS", "RegionSpatialFormat": b"\x18\x00\x12\x60US",
    "RegionLocationMinX0": b"\x18\x00\x18\x60UL", "RegionLocationMaxX1": b"\x18\x00\x1c\x60UL",
    "RegionLocationMaxY1": b"\x18\x00\x1e\x60UL", "PhysicalUnitsXDirection": b"\x18\x00\x24\x60US",
    "PhysicalDeltaX": b"\x18\x00\x2c\x60FD", "PhysicalDeltaY": b"\x18\x00\x2e\x60FD",
    "SeriesDescription": b"\x08\x00\x3e\x10LO", "TransferSyntaxUID": b"\x02\x00\x10\x00UI",
}
NUMBERS = [0, 1, 2, 3, 7, 8, 16, 255, 256, 65535, 2**31 - 1, 2**32 - 1, -1, 1e-320, 1e300, math.nan, math.inf,
           -math.inf, -0.03]


def _encode(vr: bytes, size: int, number: float) -> bytes:
    """``number`` in the element's binary or text form, fitted to ``size`` bytes (the element length is kept)."""
    if vr in (b"US", b"UL"):
        fmt, bits = ("<H", 16) if vr == b"US" else ("<I", 32)
        value = int(number) % (1 << bits) if math.isfinite(number) else (1 << bits) - 1
        return struct.pack(fmt, value) * max(1, size // (bits // 8))
    if vr == b"FD":
        return struct.pack("<d", number) * (size // 8)
    return repr(number).encode()[:size].ljust(size)


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(sorted(DICOM_TAGS)),
                                st.one_of(st.sampled_from(NUMBERS), st.binary(min_size=1, max_size=16))),
                      min_size=1, max_size=4),
       syntax=st.sampled_from(["native", "jpeg", "rle"]))
def test_hostile_dicom_values_give_a_study_or_a_typed_error(edits: list[tuple[str, Any]], syntax: str,
                                                             tmp_path: Path) -> None:
    raw = bytearray(seed(f"dicom-{syntax}", tmp_path.parent / "fuzz-seeds")[1])
    for keyword, value in edits:
        tag = DICOM_TAGS[keyword]
        at = raw.find(tag)
        if at < 0:
            continue
        size = struct.unpack_from("<H", raw, at + 6)[0]
        new = _encode(tag[4:], size, value) if isinstance(value, (int, float)) else (value * size)[:size]
        raw[at + 8 : at + 8 + size] = new.ljust(size, b"\x00")[:size]
    path = tmp_path / "scan.dcm"
    path.write_bytes(bytes(raw))
    only_study_or_input_error(lambda: load_any([path], {"view": "A4C"}))
