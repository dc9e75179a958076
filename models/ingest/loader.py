"""``load_any``: any supported input → a validated :class:`~models.study.Study`.

Steps: read and sniff every input (content, not names) → group (a PNG folder, a DICOM
single-frame series) → decode each group under the size caps → settle view, spacing and
frame rate (manifest > file metadata > a typed error asking for it) → masks: label maps are
label-selected and cleaned; B-mode is segmented (masks supplied for a view always win) →
``validate_masks``. What was decided, and every warning, is in ``Study.meta["ingest"]``.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.errors import ErrorCode, InputError
from models.ingest.decoded import Decoded, InputItem
from models.ingest.dicom import DicomHeader, decode_dicom, read_dicom_header
from models.ingest.expand import Expanded, expand_paths
from models.ingest.masks import clean_masks, select_label, threshold_grey
from models.ingest.nifti import read_nifti
from models.ingest.npy import read_npy
from models.ingest.options import IngestManifest, Kind, parse_manifest, validate_fps
from models.ingest.png import read_png_sequence
from models.ingest.report import IngestReport
from models.ingest.sniff import Format
from models.ingest.video import read_video
from models.quality.signals import segmentation_confidence
from models.quality.stability import fac_spread
from models.segment.protocol import Segmenter
from models.study import Study, StudyLimits, ViewSequence, load_study, validate_masks, validate_spacing

logger = logging.getLogger(__name__)

AGREEMENT_TOL = 0.05
EMBEDDED_MANIFEST = "manifest.json"


@dataclass
class IngestResult:
    """The study, the grey B-mode frames per view where the input had images (for previews), the report."""

    study: Study
    images: dict[str, NDArray[np.uint8]] = field(default_factory=dict)
    report: IngestReport = field(default_factory=IngestReport)


def _embedded_manifest(items: list[InputItem], report: IngestReport, limits: StudyLimits) -> dict[str, Any] | None:
    found = [i for i in items if i.fmt == Format.JSON and i.name == EMBEDDED_MANIFEST]
    for i in items:
        if i.fmt == Format.JSON and i.name != EMBEDDED_MANIFEST:
            report.warn(f"ignored a JSON file that is not {EMBEDDED_MANIFEST}")
    if not found:
        return None
    if len(found) > 1:
        raise InputError(f"the inputs hold {len(found)} {EMBEDDED_MANIFEST} files; keep one",
                         code=ErrorCode.INVALID_MANIFEST, field=EMBEDDED_MANIFEST)
    if len(found[0].data) > limits.max_manifest_bytes:
        raise InputError(f"{EMBEDDED_MANIFEST} is larger than {limits.max_manifest_bytes} bytes",
                         code=ErrorCode.TOO_LARGE, field=EMBEDDED_MANIFEST)
    try:
        doc = json.loads(found[0].data.decode("utf-8"))
    except (ValueError, RecursionError):  # bad UTF-8/JSON, 4300+ digit integers, deep nesting
        raise InputError(f"{EMBEDDED_MANIFEST} is not valid UTF-8 JSON", code=ErrorCode.INVALID_MANIFEST,
                         field=EMBEDDED_MANIFEST) from None
    if not isinstance(doc, dict):
        raise InputError(f"{EMBEDDED_MANIFEST} must be a JSON object", code=ErrorCode.INVALID_MANIFEST,
                         field=EMBEDDED_MANIFEST)
    return doc


def _decode_all(items: list[InputItem], manifest: IngestManifest, limits: StudyLimits, report: IngestReport,
                salt: bytes | str | None) -> list[Decoded]:
    """Group items into sources and decode each one."""
    decoded: list[Decoded] = []
    png_groups: dict[str, list[InputItem]] = defaultdict(list)
    dicom_series: dict[str, list[DicomHeader]] = defaultdict(list)
    dicom_multi: list[DicomHeader] = []
    non_image_dicom = 0
    for it in items:
        if it.fmt == Format.PNG:
            png_groups[it.folder].append(it)
        elif it.fmt == Format.DICOM:
            h = read_dicom_header(it, limits)
            if h is None:
                non_image_dicom += 1
            elif h.n_frames > 1:
                dicom_multi.append(h)
            else:
                dicom_series[h.series_key].append(h)
    if non_image_dicom:
        report.warn(f"skipped {non_image_dicom} DICOM file(s) without pixel data (DICOMDIR, reports)")

    for it in items:
        opts = manifest.options_for(it.name, it.relpath, it.folder)
        if it.fmt == Format.NPY:
            decoded.append(read_npy(it, opts, report.add_source("npy"), limits))
        elif it.fmt in (Format.NIFTI, Format.NIFTI_GZ):
            decoded.append(read_nifti(it, opts, report.add_source("nifti"), limits, report))
        elif it.fmt in (Format.MP4, Format.AVI):
            decoded.append(read_video(it, opts, report.add_source(it.fmt.value), limits))
    for folder, group in png_groups.items():
        first = group[0]
        opts = manifest.options_for(first.name, first.relpath, folder)
        src = report.add_source("png")
        src.extra["png_files"] = len(group)
        decoded.append(read_png_sequence(group, opts, src, limits))
    for headers in [[h] for h in dicom_multi] + list(dicom_series.values()):
        first = headers[0].item
        opts = manifest.options_for(first.name, first.relpath, first.folder)
        decoded.append(decode_dicom(headers, opts, report.add_source("dicom"), limits, report, salt))
    return decoded


def _differs(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return any(abs(x - y) > AGREEMENT_TOL * max(abs(x), abs(y)) for x, y in zip(a, b, strict=True))


def _settle(d: Decoded, report: IngestReport) -> str:
    """Fix view, spacing and fps of one source (caller > metadata > error); returns the view."""
    src, opts, where = d.source, d.options, d.source.label
    if opts.view is not None:
        if d.view is not None and d.view != opts.view:
            report.warn(f"{where}: the file's metadata names view {d.view}, the caller {opts.view}; using {opts.view}")
        src.view, src.view_source = opts.view, "caller"
    elif d.view is not None:
        src.view, src.view_source = d.view, d.view_source
    else:
        raise InputError(f"{where}: cannot tell which apical view this is (no view code or series description "
                         "naming it); pass --view A4C|A2C|A3C or the manifest's 'view'",
                         code=ErrorCode.MISSING_VIEW, field="view")
    if opts.pixel_spacing_mm is not None:
        if d.spacing_mm is not None and _differs(d.spacing_mm, opts.pixel_spacing_mm):
            report.warn(f"{where}: caller spacing {list(opts.pixel_spacing_mm)} mm differs from the file's "
                        f"{[round(s, 4) for s in d.spacing_mm]} mm ({d.spacing_source}); using the caller's")
        src.pixel_spacing_mm, src.spacing_source = opts.pixel_spacing_mm, "caller"
    elif d.spacing_mm is not None:
        src.pixel_spacing_mm = validate_spacing(list(d.spacing_mm), f"{where} spacing ({d.spacing_source})")
        src.spacing_source = d.spacing_source
    else:
        raise InputError(f"{where} carries no pixel spacing; pass --spacing ROW_MM,COL_MM or the manifest's "
                         "'pixel_spacing_mm'", code=ErrorCode.BAD_SPACING, field="pixel_spacing_mm")
    if opts.fps is not None:
        if d.fps is not None and _differs((d.fps,), (opts.fps,)):
            report.warn(f"{where}: caller frame rate {opts.fps:g} fps differs from the file's {d.fps:.4g} fps "
                        f"({d.fps_source}); using the caller's")
        src.fps, src.fps_source = opts.fps, "caller"
    elif d.fps is not None:
        src.fps, src.fps_source = validate_fps(d.fps, f"{where} frame rate ({d.fps_source})"), d.fps_source
    else:
        raise InputError(f"{where} carries no frame timing; pass --fps or the manifest's 'fps'",
                         code=ErrorCode.BAD_TIMING, field="fps")
    src.kind = d.kind
    src.n_frames = int(d.frames.shape[0])
    src.shape = (int(d.frames.shape[1]), int(d.frames.shape[2]))
    return src.view


def blank_outside(frames: NDArray[np.uint8], region: tuple[int, int, int, int] | None) -> NDArray[np.uint8]:
    """Zero every pixel outside the imaging region (burned-in text, ECG trace, scales)."""
    if region is None:
        return frames
    r0, c0, r1, c1 = region
    out = np.zeros_like(frames)
    out[:, r0 : r1 + 1, c0 : c1 + 1] = frames[:, r0 : r1 + 1, c0 : c1 + 1]
    return out


def _masks_of(d: Decoded, view: str, segmenter: Segmenter | None, report: IngestReport) -> NDArray[np.uint8]:
    where = f"views.{view} ({d.source.label})"
    if d.kind == "masks":
        if d.lossy_masks:
            report.warn(f"{where}: masks came through a lossy codec or are not clean labels; thresholded at "
                        "mid-range")
            fg = threshold_grey(d.frames)
        else:
            fg = select_label(d.frames, d.options.label, where)
        return clean_masks(fg, where, report, strict=True)
    if segmenter is None:
        raise InputError(f"{where} holds B-mode images and no segmenter is configured; supply LV masks for this view "
                         "or configure a segmenter", code=ErrorCode.NO_SEGMENTER, field=f"views.{view}")
    images = blank_outside(d.frames, d.region)
    probabilities = np.asarray(segmenter.probabilities(images))
    if probabilities.shape != images.shape:
        raise InputError(f"{where}: the segmenter returned {probabilities.shape} for frames {images.shape}",
                         code=ErrorCode.NO_SEGMENTER, field="segmenter")
    masks = probabilities > 0.5
    d.source.segmenter = segmenter.name
    d.source.extra["segmentation_confidence"] = round(segmentation_confidence(probabilities), 4)
    d.source.extra["segmentation_fac_spread"] = round(fac_spread(segmenter, images, masks), 4)
    report.warn(f"{where}: LV masks were produced by the segmenter ({segmenter.name}); review the preview "
                "before trusting measurements")
    return clean_masks(masks, where, report, strict=False, what="segmenter output")


def _to_paths(paths: Sequence[str | Path] | str | Path) -> list[Path]:
    if isinstance(paths, str | Path):
        return [Path(paths)]
    return [Path(p) for p in paths]


def _decode_settled(expanded: Expanded, report: IngestReport, manifest: dict[str, Any] | None,
                    limits: StudyLimits, salt: bytes | str | None, **defaults: Any) -> list[Decoded]:
    if expanded.skipped:
        report.warn(f"skipped {len(expanded.skipped)} file(s) Echo4D does not read (not DICOM, MP4/AVI, "
                    "NIfTI, .npy or PNG)")
    embedded = _embedded_manifest(expanded.items, report, limits)
    if embedded is not None and manifest is not None:
        report.warn(f"both a manifest and an embedded {EMBEDDED_MANIFEST} were given; using the former")
    parsed = parse_manifest(manifest if manifest is not None else embedded, **defaults)
    items = [i for i in expanded.items if i.fmt != Format.JSON]
    if not items:
        raise InputError("no image or mask file among the inputs", code=ErrorCode.UNSUPPORTED_FORMAT, field="inputs")
    decoded = _decode_all(items, parsed, limits, report, salt)
    if not decoded:  # e.g. only DICOM files without pixel data: never an empty study
        raise InputError("no image or mask data among the inputs (DICOM files without pixel data are skipped)",
                         code=ErrorCode.UNSUPPORTED_FORMAT, field="inputs")
    for d in decoded:
        _settle(d, report)
    return decoded


def decode_inputs(paths: Sequence[str | Path] | str | Path, manifest: dict[str, Any] | None = None, *,
                  view: str | None = None, spacing_mm: tuple[float, float] | None = None, fps: float | None = None,
                  kind: Kind | None = None, limits: StudyLimits = StudyLimits()
                  ) -> tuple[list[Decoded], IngestReport]:
    """Read and decode inputs with view, spacing and fps settled, but make no masks (no segmentation).

    Each :class:`Decoded` holds ``frames`` (T, H, W) and ``source`` (its :class:`SourceReport`);
    B-mode frames are not yet blanked outside ``region`` (use :func:`blank_outside`).
    """
    report = IngestReport()
    expanded = expand_paths(_to_paths(paths), limits)
    if expanded.bundles:
        raise InputError("a study bundle holds masks, not images to decode", code=ErrorCode.INVALID_STUDY,
                         field="inputs")
    decoded = _decode_settled(expanded, report, manifest, limits, None, view=view, spacing_mm=spacing_mm, fps=fps,
                              kind=kind)
    return decoded, report


def ingest(paths: Sequence[str | Path] | str | Path, manifest: dict[str, Any] | None = None, *,
           view: str | None = None, spacing_mm: tuple[float, float] | None = None, fps: float | None = None,
           label: int | None = None, kind: Kind | None = None, segmenter: Segmenter | None = None,
           limits: StudyLimits = StudyLimits(), salt: bytes | str | None = None) -> IngestResult:
    """Convert inputs to a :class:`Study` and keep the grey frames of image inputs (see :func:`load_any`).

    Keyword values (``view``, ``spacing_mm``, ``fps``, ``label``, ``kind``) are defaults that the
    manifest's top level and then its ``files`` entries override.
    """
    report = IngestReport()
    path_list = _to_paths(paths)
    if not path_list:
        raise InputError("no input given", code=ErrorCode.INVALID_STUDY, field="inputs")
    expanded = expand_paths(path_list, limits)
    if expanded.bundles:
        if len(expanded.bundles) > 1 or expanded.items:
            raise InputError("a study bundle (a folder or zip with study.json) must be the only input",
                             code=ErrorCode.INVALID_STUDY, field="inputs")
        study = load_study(expanded.bundles[0], limits)
        src = report.add_source("echo4d-study")
        src.view_source = src.spacing_source = src.fps_source = "bundle"
        if manifest or view or spacing_mm or fps or label:
            report.warn("the input is a study bundle; manifest and option values were ignored")
        meta = dict(study.meta)
        meta["ingest"] = report.to_dict()
        return IngestResult(Study(study.views, meta), {}, report)
    by_view: dict[str, list[Decoded]] = defaultdict(list)
    for d in _decode_settled(expanded, report, manifest, limits, salt, view=view, spacing_mm=spacing_mm, fps=fps,
                             label=label, kind=kind):
        by_view[d.source.view or ""].append(d)

    views: dict[str, ViewSequence] = {}
    images: dict[str, NDArray[np.uint8]] = {}
    for name in ("A4C", "A2C", "A3C"):
        group = by_view.get(name)
        if not group:
            continue
        masks_in = [d for d in group if d.kind == "masks"]
        image_in = [d for d in group if d.kind == "images"]
        if len(masks_in) > 1 or (not masks_in and len(image_in) > 1):
            labels = ", ".join(d.source.label for d in group)
            raise InputError(f"several inputs claim view {name} ({labels}); give one cine per view",
                             code=ErrorCode.INVALID_STUDY, field=f"views.{name}")
        chosen = masks_in[0] if masks_in else image_in[0]
        for d in image_in:
            if d is not chosen:
                d.source.used = False
                report.warn(f"views.{name}: masks were supplied ({chosen.source.label}); the B-mode "
                            f"{d.source.label} was not segmented (masks always win)")
                if d.frames.shape != chosen.frames.shape:
                    report.warn(f"views.{name}: the supplied masks {tuple(chosen.frames.shape)} and the B-mode "
                                f"{tuple(d.frames.shape)} differ in frame count or size")
        masks = validate_masks(_masks_of(chosen, name, segmenter, report), f"views.{name}", limits)
        src = chosen.source
        assert src.pixel_spacing_mm is not None and src.fps is not None
        views[name] = ViewSequence(name, masks, src.pixel_spacing_mm, src.fps)
        pictures = [d for d in image_in if d.frames.shape == masks.shape]
        if pictures:
            images[name] = blank_outside(pictures[0].frames, pictures[0].region)
    logger.info("ingest: %d source(s) → views %s, %d warning(s)", len(report.sources), list(views),
                len(report.warnings))
    return IngestResult(Study(views, {"ingest": report.to_dict()}), images, report)


def load_any(paths: Sequence[str | Path] | str | Path, manifest: dict[str, Any] | None = None, *,
             view: str | None = None, segmenter: Segmenter | None = None, limits: StudyLimits = StudyLimits(),
             salt: bytes | str | None = None) -> Study:
    """Any supported input (study bundle, DICOM, MP4/AVI, NIfTI, .npy, PNG folder/zip) → a validated Study.

    ``manifest`` (see :mod:`models.ingest.options`) supplies view, spacing, fps, LV label and
    kind per file; ``view`` is the default view; ``segmenter`` turns B-mode into masks (masks
    supplied for a view always win; B-mode without a segmenter is an error); ``salt`` enables
    salted series identifiers in the report. Raises :class:`InputError` with a stable code.
    The report (sources, decisions, warnings) is in ``study.meta["ingest"]``.
    """
    return ingest(paths, manifest, view=view, segmenter=segmenter, limits=limits, salt=salt).study
