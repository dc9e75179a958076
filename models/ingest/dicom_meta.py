"""Interpret the technical DICOM attributes of an ultrasound cine: spacing, timing and view.

Spacing comes from the Sequence of Ultrasound Regions (PhysicalDeltaX/Y in the units of
PhysicalUnitsX/YDirection; 3 = cm), never from PixelSpacing alone when regions exist.
A region whose bounds do not fit the image means the file was resampled after acquisition
(pydicom's ``ybr_color`` example: bounds (84, 31)–(595, 414) in a 320×240 image, i.e.
downscaled 2×): the region is rescaled by the smallest integer factor that makes it fit, the
spacing multiplied by it, and a warning says so. No factor → an error asking for the spacing.

Only attributes read here leave the DICOM reader; patient-module values are never touched.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from models.errors import ErrorCode, InputError

UNITS_CM: Final = 3
MAX_RESCALE: Final = 8
MIN_REGION_FRACTION: Final = 0.25
AGREEMENT_TOL: Final = 0.05

Region = tuple[int, int, int, int]
"""(row0, col0, row1, col1) inclusive pixel bounds of the imaging area."""


@dataclass
class SpacingResult:
    spacing_mm: tuple[float, float] | None
    source: str
    region: Region | None = None
    warnings: list[str] = field(default_factory=list)
    rescale: int = 1


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _int(value: Any, default: int) -> int:
    """An integer attribute value, or ``default`` when it is absent, empty or not one integer."""
    try:
        return int(value) if value is not None and value != "" else default
    except (TypeError, ValueError, OverflowError):
        return default


def _region_items(ds: Any) -> list[Any]:
    seq = ds.get("SequenceOfUltrasoundRegions")
    return list(seq) if seq is not None else []


def _usable_2d_region(item: Any) -> tuple[float, float, Region] | None:
    """(dy_mm, dx_mm, bounds) of a 2D tissue region in cm units (deltas signed as stored), else None."""
    if _int(item.get("RegionSpatialFormat"), 0) != 1:
        return None
    ux, uy = item.get("PhysicalUnitsXDirection"), item.get("PhysicalUnitsYDirection")
    dx, dy = _num(item.get("PhysicalDeltaX")), _num(item.get("PhysicalDeltaY"))
    if ux != UNITS_CM or uy != UNITS_CM or dx is None or dy is None:
        return None
    x0, y0 = _int(item.get("RegionLocationMinX0"), 0), _int(item.get("RegionLocationMinY0"), 0)
    x1, y1 = _int(item.get("RegionLocationMaxX1"), 0), _int(item.get("RegionLocationMaxY1"), 0)
    return dy * 10.0, dx * 10.0, (y0, x0, y1, x1)


def _pixel_spacing(ds: Any) -> tuple[float, float] | None:
    ps = ds.get("PixelSpacing")
    if ps is None or len(ps) != 2:
        return None
    r, c = _num(ps[0]), _num(ps[1])
    if r is None or c is None or r <= 0 or c <= 0:
        return None
    return r, c


def _disagree(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return any(abs(x - y) > AGREEMENT_TOL * max(x, y) for x, y in zip(a, b, strict=True))


def _fmt(s: tuple[float, float]) -> str:
    return f"({s[0]:.4g}, {s[1]:.4g}) mm"


def ultrasound_spacing(ds: Any, rows: int, cols: int, where: str) -> SpacingResult:
    """Pixel spacing (row, col) mm of a US image from its regions (or PixelSpacing as a fallback)."""
    items = _region_items(ds)
    usable = [u for u in (_usable_2d_region(i) for i in items) if u is not None]
    tissue = [u for i, u in zip(items, (_usable_2d_region(i) for i in items), strict=True)
              if u is not None and _int(i.get("RegionDataType"), 1) == 1]
    pick = tissue or usable
    pixel_spacing = _pixel_spacing(ds)
    if not pick:
        if items:
            raise InputError(f"{where}: the ultrasound regions give no 2D spacing in cm (PhysicalUnits 3); "
                             "pass the pixel spacing explicitly (--spacing ROW,COL or the manifest)",
                             code=ErrorCode.BAD_SPACING, field="SequenceOfUltrasoundRegions")
        if pixel_spacing is None:
            return SpacingResult(None, "none")
        return SpacingResult(pixel_spacing, "PixelSpacing",
                             warnings=[f"{where}: no ultrasound region; spacing {_fmt(pixel_spacing)} taken from "
                                       "PixelSpacing, which scanners do not always calibrate — check it"])
    dy, dx, (r0, c0, r1, c1) = max(pick, key=lambda u: (u[2][2] - u[2][0]) * (u[2][3] - u[2][1]))
    if dx == 0 or dy == 0:
        raise InputError(f"{where}: the ultrasound region's PhysicalDelta is zero", code=ErrorCode.BAD_SPACING,
                         field="PhysicalDeltaX")
    warnings: list[str] = []
    if dx < 0 or dy < 0:
        warnings.append(f"{where}: the ultrasound region's PhysicalDeltaX/Y is negative; its magnitude is used")
        dx, dy = abs(dx), abs(dy)
    k = 1
    if r1 >= rows or c1 >= cols or r0 < 0 or c0 < 0:
        k = next((f for f in range(2, MAX_RESCALE + 1) if r1 / f <= rows - 0.5 and c1 / f <= cols - 0.5), 0)
        fits = k and (r1 - r0) / k >= MIN_REGION_FRACTION * rows and (c1 - c0) / k >= MIN_REGION_FRACTION * cols
        if not fits:
            raise InputError(
                f"{where}: the ultrasound region bounds ({c0},{r0})–({c1},{r1}) do not fit the {cols}×{rows} image "
                "and no whole-number downscale explains it, so its spacing cannot be trusted; pass the pixel "
                "spacing explicitly (--spacing ROW,COL or the manifest)",
                code=ErrorCode.BAD_SPACING, field="SequenceOfUltrasoundRegions")
        warnings.append(
            f"{where}: ultrasound region bounds ({c0},{r0})–({c1},{r1}) lie outside the {cols}×{rows} image: "
            f"the file was downscaled {k}× after acquisition, so the region spacing {_fmt((dy, dx))} was "
            f"rescaled to {_fmt((dy * k, dx * k))}; check it, or pass --spacing to override")
        r0, c0, r1, c1 = (round(v / k) for v in (r0, c0, r1, c1))
        r1, c1 = min(r1, rows - 1), min(c1, cols - 1)
    spacing = (dy * k, dx * k)
    if pixel_spacing is not None and _disagree(pixel_spacing, spacing):
        warnings.append(f"{where}: PixelSpacing {_fmt(pixel_spacing)} disagrees with the ultrasound region "
                        f"{_fmt(spacing)}; using the region")
    source = "ultrasound_region" if k == 1 else f"ultrasound_region_rescaled_{k}x"
    return SpacingResult(spacing, source, (r0, c0, r1, c1), warnings, k)


@dataclass
class TimingResult:
    fps: float | None
    source: str
    warnings: list[str] = field(default_factory=list)


def cine_timing(ds: Any, n_frames: int, where: str) -> TimingResult:
    """Frame rate from FrameTime, FrameTimeVector, CineRate (then RecommendedDisplayFrameRate)."""
    ft = _num(ds.get("FrameTime"))
    if ft is not None and ft > 0:
        return TimingResult(1000.0 / ft, "FrameTime")
    vec = ds.get("FrameTimeVector")
    if vec is not None and len(vec) > 0:
        values = np.array([_num(v) if _num(v) is not None else np.nan for v in vec], dtype=np.float64)
        if len(values) != n_frames:
            raise InputError(f"{where}: FrameTimeVector has {len(values)} entries for {n_frames} frames",
                             code=ErrorCode.FRAME_COUNT_MISMATCH, field="FrameTimeVector")
        steps = values[1:]
        if steps.size and np.all(np.isfinite(steps)) and np.all(steps > 0):
            warnings = []
            if steps.std() > 0.1 * steps.mean():
                warnings.append(f"{where}: frame intervals vary by more than 10 %; using their mean")
            return TimingResult(1000.0 / float(steps.mean()), "FrameTimeVector", warnings)
    cine = _num(ds.get("CineRate"))
    if cine is not None and cine > 0:
        return TimingResult(cine, "CineRate")
    rec = _num(ds.get("RecommendedDisplayFrameRate"))
    if rec is not None and rec > 0:
        return TimingResult(rec, "RecommendedDisplayFrameRate",
                            [f"{where}: frame rate taken from RecommendedDisplayFrameRate (a display setting)"])
    return TimingResult(None, "none")


_VIEW_PATTERNS: Final = (
    ("A4C", re.compile(r"\bA4C\b|\bAP(?:ICAL)?[\s_-]*4|FOUR[\s_-]*CHAMBER|\b4[\s_-]*CH", re.IGNORECASE)),
    ("A2C", re.compile(r"\bA2C\b|\bAP(?:ICAL)?[\s_-]*2|TWO[\s_-]*CHAMBER|\b2[\s_-]*CH", re.IGNORECASE)),
    ("A3C", re.compile(r"\bA3C\b|\bAP(?:ICAL)?[\s_-]*3|THREE[\s_-]*CHAMBER|\b3[\s_-]*CH|APICAL[\s_-]*LONG[\s_-]*AXIS|"
                       r"\bAPLAX\b", re.IGNORECASE)),
)


def view_from_text(text: str) -> str | None:
    """The apical view a free-text label names (exactly one), else None."""
    hits = {name for name, pat in _VIEW_PATTERNS if pat.search(text)}
    return hits.pop() if len(hits) == 1 else None


def dicom_view(ds: Any) -> tuple[str | None, str]:
    """(view, source) from the ViewCodeSequence's meaning, else the SeriesDescription."""
    for item in ds.get("ViewCodeSequence", None) or []:
        view = view_from_text(str(item.get("CodeMeaning", "")))
        if view:
            return view, "ViewCodeSequence"
    desc = ds.get("SeriesDescription")
    if desc:
        view = view_from_text(str(desc))
        if view:
            return view, "SeriesDescription"
    return None, "none"
