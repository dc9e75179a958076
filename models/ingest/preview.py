"""The ingest preview: per view, the ED and ES frames with the LV mask outlined, and the area curve.

Pure rendering to PNG bytes (matplotlib's object API, no pyplot state); B-mode is shown where
the input had images (blanked outside the ultrasound region, so burned-in text never shows),
else the masks alone.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.errors import InputError
from models.study import Study


def _outline(mask: NDArray[np.uint8]) -> NDArray[np.bool_]:
    m = mask.astype(bool)
    inner = m.copy()
    inner[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return np.asarray(m & ~inner)


def overlay(frame: NDArray[np.uint8] | None, mask: NDArray[np.uint8], colour: tuple[int, int, int] = (255, 60, 60)
            ) -> NDArray[np.uint8]:
    """RGB (H, W, 3): the grey frame (or a dim mask) with the mask's outline in ``colour``."""
    base = frame if frame is not None else (mask * 90).astype(np.uint8)
    rgb = np.repeat(base[..., None], 3, axis=2).copy()
    edge = _outline(mask)
    for dy in (0, 1):
        for dx in (0, 1):
            e = np.zeros_like(edge)
            e[dy:, dx:] = edge[: edge.shape[0] - dy, : edge.shape[1] - dx]
            rgb[e] = colour
    return rgb


def ed_es_or_none(study: Study, view: str) -> tuple[int, int, tuple[int, int]] | None:
    from models.phase import detect_ed_es, lv_areas

    v = study.views[view]
    try:
        return detect_ed_es(lv_areas(v.masks), v.fps)
    except InputError:
        return None


def render_preview(study: Study, images: dict[str, NDArray[np.uint8]] | None = None, title: str = "") -> bytes:
    """PNG bytes: one row per view (ED frame, ES frame, LV area curve with ED/ES marked)."""
    from matplotlib.figure import Figure

    from models.phase import lv_areas

    images = images or {}
    names = study.view_names
    fig = Figure(figsize=(11, 3.2 * len(names)), dpi=90)
    axes: Any = fig.subplots(len(names), 3, squeeze=False)
    for row, name in enumerate(names):
        v = study.views[name]
        found = ed_es_or_none(study, name)
        ed, es = (found[0], found[1]) if found else (0, int(np.argmin(lv_areas(v.masks))))
        pics = images.get(name)
        for col, (label, k) in enumerate((("ED", ed), ("ES", es))):
            ax = axes[row][col]
            ax.imshow(overlay(pics[k] if pics is not None else None, v.masks[k]))
            ax.set_title(f"{name} {label} (frame {k})" + ("" if found else " — ED/ES not detected"), fontsize=9)
            ax.axis("off")
        ax = axes[row][2]
        areas_cm2 = lv_areas(v.masks) * v.pixel_spacing_mm[0] * v.pixel_spacing_mm[1] / 100.0
        t = np.arange(v.n_frames) / v.fps
        ax.plot(t, areas_cm2, "-o", ms=3, color="0.3")
        ax.axvline(ed / v.fps, color="tab:blue", label=f"ED {ed}")
        ax.axvline(es / v.fps, color="tab:red", label=f"ES {es}")
        if found:
            ax.axvspan(found[2][0] / v.fps, min(found[2][1], v.n_frames - 1) / v.fps, color="0.9", zorder=0,
                       label="beat used")
        ax.set_xlabel("time (s)", fontsize=8)
        ax.set_ylabel("LV area (cm²)", fontsize=8)
        ax.legend(fontsize=7, loc="best")
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
