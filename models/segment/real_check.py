"""Run a segmenter on real B-mode cines and measure what it does (for docs/ingest.md).

For each clip: ingest (with the segmenter), then per frame the LV area (cm²) and length (mm,
extent along the mask's principal axis), ED/ES from the area curve (``models.phase``), the
fractional area change, frames left empty, and an overlay figure (ED, mid-systole, ES,
mid-diastole, and the area/length curves). Nothing here is tuned on these clips.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from models.errors import InputError
from models.ingest.loader import blank_outside, decode_inputs
from models.ingest.masks import clean_masks
from models.ingest.preview import overlay
from models.phase import analyse_cycle
from models.quality.signals import long_axis_length_mm
from models.segment.protocol import Segmenter
from models.study import validate_masks


def largest_component(mask: NDArray[np.uint8]) -> NDArray[np.uint8]:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(np.uint8)
    sizes = np.bincount(lab.ravel())[1:]
    out: NDArray[np.uint8] = (lab == int(np.argmax(sizes)) + 1).astype(np.uint8)
    return out


@dataclass
class ClipCheck:
    name: str
    n_frames: int = 0
    shape: tuple[int, int] = (0, 0)
    spacing_mm: tuple[float, float] = (0.0, 0.0)
    fps: float = 0.0
    areas_cm2: list[float] = field(default_factory=list)
    lengths_mm: list[float] = field(default_factory=list)
    empty_frames: int = 0
    ed: int | None = None
    es: int | None = None
    beat: tuple[int, int] | None = None
    complete_beat: bool = False
    ingest_error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        a = np.asarray(self.areas_cm2)
        fac = None
        if self.ed is not None and self.es is not None and a[self.ed] > 0:
            fac = round(float((a[self.ed] - a[self.es]) / a[self.ed]), 3)
        return {
            "name": self.name, "n_frames": self.n_frames, "shape": list(self.shape),
            "spacing_mm": [round(s, 4) for s in self.spacing_mm], "fps": round(self.fps, 3),
            "area_cm2_min_median_max": [round(float(x), 2) for x in np.percentile(a, [0, 50, 100])] if a.size else None,
            "length_mm_min_median_max": [round(float(x), 1) for x in np.percentile(self.lengths_mm, [0, 50, 100])]
            if self.lengths_mm else None,
            "empty_frames": self.empty_frames, "ed": self.ed, "es": self.es,
            "beat": list(self.beat) if self.beat else None, "complete_beat": self.complete_beat,
            "fractional_area_change": fac, "ingest_error": self.ingest_error, "warnings": self.warnings,
        }


def real_clips(real_echo: Path) -> list[tuple[str, Path, dict[str, Any]]]:
    """(name, path, manifest) of the real example cines: ``a4c_sequence.nii.gz`` in ``real_echo`` (it
    stores no frame time: 25 fps is assumed, it only scales the time axis) and pydicom's ``ybr_color``."""
    from pydicom import examples

    return [("a4c_sequence", real_echo / "a4c_sequence.nii.gz", {"view": "A4C", "fps": 25.0}),
            ("pydicom_ybr_color", Path(examples.get_path("ybr_color")), {"view": "A4C"})]


def check_clip(name: str, paths: list[Path], manifest: dict[str, Any], segmenter: Segmenter) -> tuple[ClipCheck, bytes]:
    """Segment one real clip; returns the measurements and an overlay figure (PNG bytes)."""
    decoded, report = decode_inputs(paths, manifest, kind="images")
    d = decoded[0]
    assert d.source.pixel_spacing_mm is not None and d.source.fps is not None
    frames = blank_outside(d.frames, d.region)
    raw = segmenter.segment(frames)
    out = ClipCheck(name, warnings=list(report.warnings))
    try:  # would ingest accept the segmentation? (same cleaning and validation as load_any)
        validate_masks(clean_masks(raw > 0, name, report, strict=False, what="segmenter output"), name)
    except InputError as exc:
        out.ingest_error = f"{exc.code.value}: {exc.detail}"
    spacing, fps = d.source.pixel_spacing_mm, d.source.fps
    masks = np.stack([largest_component(m) for m in raw])
    out.n_frames, out.shape, out.spacing_mm, out.fps = len(masks), masks.shape[1:3], spacing, fps
    areas = masks.reshape(len(masks), -1).sum(axis=1) * (spacing[0] * spacing[1] / 100.0)
    out.areas_cm2 = [float(a) for a in areas]
    out.lengths_mm = [long_axis_length_mm(m, spacing) for m in masks]
    out.empty_frames = int((areas == 0).sum())
    try:
        c = analyse_cycle(areas, fps)
        out.ed, out.es, out.beat, out.complete_beat = c.ed, c.es, c.beat_range, c.complete
    except InputError as exc:
        out.warnings.append(f"phase: {exc.detail}")
    return out, _figure(out, frames, masks)


def _figure(check: ClipCheck, frames: NDArray[np.uint8], masks: NDArray[np.uint8]) -> bytes:
    from matplotlib.figure import Figure

    t = len(frames)
    ed = check.ed if check.ed is not None else 0
    es = check.es if check.es is not None else int(np.argmin(check.areas_cm2))
    end = check.beat[1] if check.beat and check.complete_beat else t
    picks = [("ED", ed), ("mid-systole", (ed + es) // 2), ("ES", es), ("mid-diastole", min((es + end) // 2, t - 1))]
    fig = Figure(figsize=(15, 3.6), dpi=90)
    axes: Any = fig.subplots(1, 5, gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.4]})
    for ax, (label, k) in zip(axes[:4], picks, strict=True):
        ax.imshow(overlay(frames[k], masks[k]))
        ax.set_title(f"{label} (frame {k})", fontsize=9)
        ax.axis("off")
    ax = axes[4]
    time_s = np.arange(t) / check.fps
    ax.plot(time_s, check.areas_cm2, "-o", ms=3, color="tab:red", label="area (cm²)")
    ax.set_xlabel("time (s)", fontsize=8)
    ax.set_ylabel("LV area (cm²)", fontsize=8, color="tab:red")
    ax2 = ax.twinx()
    ax2.plot(time_s, check.lengths_mm, "-s", ms=3, color="tab:blue", label="length (mm)")
    ax2.set_ylabel("LV length (mm)", fontsize=8, color="tab:blue")
    if check.ed is not None:
        ax.axvline(ed / check.fps, color="k", ls="--", lw=1)
        ax.axvline(es / check.fps, color="k", ls=":", lw=1)
    ax.set_title("area (red) / length (blue); ED -- ES ..", fontsize=9)
    fig.suptitle(f"{check.name}: {check.n_frames} frames, spacing {check.spacing_mm[0]:.3g} mm", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
