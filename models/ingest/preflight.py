"""Cheap checks of uploaded inputs before a job is queued (the API calls these; no torch, no pixels).

From headers only (DICOM without pixel data, the NIfTI and .npy headers, a count of PNG files)
plus the manifest, each source must have a known view, a known pixel spacing and frame timing,
and at least :data:`MIN_FRAMES` frames: what ingest would otherwise refuse minutes later in the
worker. The errors are the ones ingest raises (same codes and fields), so a client sees one
vocabulary. What cannot be read cheaply (a video's frame count) is left to the worker.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

import numpy as np

from models.errors import ErrorCode, InputError
from models.ingest.dicom_meta import cine_timing, dicom_view, ultrasound_spacing
from models.ingest.options import FileOptions, parse_manifest
from models.ingest.sniff import Format, gunzip_head, sniff
from models.study import StudyLimits

MIN_FRAMES: Final = 2
"""A cine needs at least this many frames (``models.study.validate_masks``)."""
HEAD_BYTES: Final = 64 * 1024
_DICOM_TAGS: Final = ("Rows", "Columns", "NumberOfFrames", "SeriesInstanceUID", "PixelSpacing",
                      "SequenceOfUltrasoundRegions", "FrameTime", "FrameTimeVector", "CineRate",
                      "RecommendedDisplayFrameRate", "ViewCodeSequence", "SeriesDescription")


@dataclass
class SourceFacts:
    """What the headers and the manifest say about one source (``None``: unknown)."""

    label: str
    view: str | None
    spacing_known: bool
    fps_known: bool
    n_frames: int | None


def check_sources(facts: Sequence[SourceFacts]) -> None:
    """Raise the :class:`InputError` ingest would raise for the first source missing a view, spacing,
    timing or frames."""
    for f in facts:
        if f.view is None:
            raise InputError(f"{f.label}: cannot tell which apical view this is (no view code or series description "
                             "naming it); pass the view (manifest 'view', or ?view= on STOW-RS)",
                             code=ErrorCode.MISSING_VIEW, field="view")
        if not f.spacing_known:
            raise InputError(f"{f.label} carries no pixel spacing; pass the manifest's 'pixel_spacing_mm'",
                             code=ErrorCode.BAD_SPACING, field="pixel_spacing_mm")
        if not f.fps_known:
            raise InputError(f"{f.label} carries no frame timing; pass the manifest's 'fps'",
                             code=ErrorCode.BAD_TIMING, field="fps")
        if f.n_frames is not None and f.n_frames < MIN_FRAMES:
            raise InputError(f"{f.label} has {f.n_frames} frame(s); a cine needs at least {MIN_FRAMES}",
                             code=ErrorCode.SINGLE_FRAME, field="frames")


def _read_dicom(stream: BinaryIO, label: str) -> Any:
    import warnings

    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(stream, stop_before_pixels=True, force=True, specific_tags=list(_DICOM_TAGS))
            for keyword in _DICOM_TAGS:
                ds.get(keyword)
    except Exception:
        raise InputError(f"{label} is not a readable DICOM file (truncated or not DICOM)",
                         code=ErrorCode.CORRUPT_FILE, field="files") from None
    return ds


def dicom_facts(datasets: Sequence[tuple[Any, FileOptions]]) -> list[SourceFacts]:
    """Facts of DICOM headers (read without pixel data): a multi-frame instance is one source, single-frame
    instances of one series together are one; instances without Rows/Columns (no image) are skipped."""
    series: dict[str, list[tuple[Any, FileOptions]]] = defaultdict(list)
    sources: list[list[tuple[Any, FileOptions]]] = []
    for ds, opts in datasets:
        if ds.get("Rows") is None or ds.get("Columns") is None:
            continue
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            sources.append([(ds, opts)])
        else:
            series[str(ds.get("SeriesInstanceUID", ""))].append((ds, opts))
    sources.extend(series.values())
    out = []
    for i, group in enumerate(sources, start=1):
        ds, opts = group[0]
        label = f"input {i} (DICOM)"
        n = int(ds.get("NumberOfFrames", 1) or 1) if len(group) == 1 else len(group)
        view = opts.view or dicom_view(ds)[0]
        spacing = opts.pixel_spacing_mm is not None or (
            ultrasound_spacing(ds, int(ds.Rows), int(ds.Columns), label).spacing_mm is not None)
        fps = opts.fps is not None or cine_timing(ds, n, label).fps is not None
        out.append(SourceFacts(label, view, spacing, fps, n))
    return out


def _nifti_facts(head: bytes, fmt: Format, opts: FileOptions, label: str, limits: StudyLimits) -> SourceFacts:
    from models.ingest.nifti import check_nifti_header, nifti_header

    hdr = nifti_header(gunzip_head(head, 544) if fmt == Format.NIFTI_GZ else head[:544], label)
    _, _, nt = check_nifti_header(hdr, label, label, limits)
    zooms = [float(z) for z in hdr.get_zooms()]
    shape = tuple(int(s) for s in hdr.get_data_shape())
    has_time = len(shape) >= 4 and shape[2] == 1 and hdr.get_xyzt_units()[1] in ("sec", "msec", "usec") \
        and len(zooms) >= 4 and zooms[3] > 0
    return SourceFacts(label, opts.view, opts.pixel_spacing_mm is not None or (zooms[0] > 0 and zooms[1] > 0),
                       opts.fps is not None or has_time, nt)


def _npy_frames(head: bytes, label: str) -> int:
    from models.ingest.npy import squeeze_cine

    try:
        f = io.BytesIO(head)
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape = read(f)[0]
    except Exception:
        raise InputError(f"{label} has an unreadable .npy header", code=ErrorCode.CORRUPT_FILE, field="files") from None
    return squeeze_cine(tuple(int(s) for s in shape), label, "files")[0]


def preflight_files(files: Sequence[tuple[str, BinaryIO]], manifest: dict[str, Any] | None,
                    limits: StudyLimits = StudyLimits()) -> None:
    """Check uploaded ``files`` ((client base name, seekable stream) pairs) against ``manifest``; raises
    :class:`InputError` naming what is missing. Streams are rewound."""
    heads: list[tuple[str, BinaryIO, bytes, Format]] = []
    for name, stream in files:
        stream.seek(0)
        head = stream.read(HEAD_BYTES)
        stream.seek(0)
        heads.append((name, stream, head, sniff(head, name)))
    if manifest is None:
        embedded = [h for n, _, h, fmt in heads if fmt == Format.JSON and n == "manifest.json"]
        if len(embedded) == 1 and len(embedded[0]) < HEAD_BYTES:
            try:
                doc = json.loads(embedded[0].decode("utf-8"))
            except (ValueError, RecursionError):
                doc = None  # ingest reports it
            manifest = doc if isinstance(doc, dict) else None
    parsed = parse_manifest(manifest)
    facts: list[SourceFacts] = []
    dicoms: list[tuple[Any, FileOptions]] = []
    pngs: list[FileOptions] = []
    for i, (name, stream, head, fmt) in enumerate(heads, start=1):
        opts = parsed.options_for(name, name, "")
        label = f"input {i} ({fmt.value})"
        if fmt == Format.DICOM:
            dicoms.append((_read_dicom(stream, label), opts))
            stream.seek(0)
        elif fmt in (Format.NIFTI, Format.NIFTI_GZ):
            facts.append(_nifti_facts(head, fmt, opts, label, limits))
        elif fmt == Format.NPY:
            facts.append(SourceFacts(label, opts.view, opts.pixel_spacing_mm is not None, opts.fps is not None,
                                     _npy_frames(head, label)))
        elif fmt in (Format.MP4, Format.AVI):  # frame count and rate sit in the container: the worker reads them
            facts.append(SourceFacts(label, opts.view, opts.pixel_spacing_mm is not None, True, None))
        elif fmt == Format.PNG:
            pngs.append(opts)
    if pngs:
        opts = pngs[0]
        facts.append(SourceFacts(f"the {len(pngs)} PNG file(s)", opts.view, opts.pixel_spacing_mm is not None,
                                 opts.fps is not None, len(pngs)))
    check_sources(dicom_facts(dicoms) + facts)
