"""``preview.png``: the LV at ED and ES seen in the A4C and A2C planes, and the volume curve.

Rendering is a painter's-algorithm orthographic projection of the shaded triangles (no 3D
toolkit, fast for tens of thousands of faces), drawn like an echo image: apex at the top,
the long axis pointing down, lateral wall to the right. All panels share one mm scale so the
ED/ES size change is visible. matplotlib's object API with the Agg canvas (no pyplot state).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Final

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from numpy.typing import NDArray

from models.export.atomic import atomic_write_bytes
from models.geometry.frames import VIEW_ANGLES_DEG, plane_axes
from models.recon.result import ReconResult

PREVIEW_VIEWS: Final[tuple[str, ...]] = ("A4C", "A2C")
ED_RGB: Final[NDArray[np.float64]] = np.array([0.85, 0.25, 0.25])
ES_RGB: Final[NDArray[np.float64]] = np.array([0.25, 0.40, 0.85])
DPI: Final[int] = 100


def projected_triangles(
    vertices: NDArray[np.float64], faces: NDArray[np.int64], view: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Front-facing triangles of a mesh seen in ``view``'s plane, far to near.

    Returns corners (K, 3, 2) as (lateral, long-axis) mm and a Lambert shade (K,) in [0, 1]
    for a light at the viewer, who looks along the plane normal.
    """
    axes = plane_axes(VIEW_ANGLES_DEG[view])
    lateral, depth, normal = axes[:, 0], axes[:, 1], axes[:, 2]
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces, dtype=np.int64)]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n_len = np.linalg.norm(n, axis=1)
    facing = -(n @ normal) / np.where(n_len > 0, n_len, 1.0)
    keep = facing > 0
    tri, facing = tri[keep], facing[keep]
    order = np.argsort(-(tri @ normal).mean(axis=1), kind="stable")
    tri, facing = tri[order], facing[order]
    corners = np.stack([tri @ lateral, tri @ depth], axis=-1)
    return corners, facing


def _draw_mesh(ax: Axes, vertices: NDArray[np.float64], faces: NDArray[np.int64], view: str,
               rgb: NDArray[np.float64], title: str) -> None:
    corners, shade = projected_triangles(vertices, faces, view)
    colours = np.clip(rgb[None, :] * (0.25 + 0.75 * shade[:, None]), 0.0, 1.0)
    ax.add_collection(PolyCollection(list(corners), facecolors=colours, edgecolors="none", antialiased=False))
    ax.set_title(title, fontsize=10)
    ax.set_aspect("equal")
    ax.set_xlabel("lateral (mm)", fontsize=8)
    ax.set_ylabel("long axis from apex (mm)", fontsize=8)
    ax.tick_params(labelsize=7)


def _fmt(value: float, unit: str) -> str:
    return f"{value:.1f} {unit}" if math.isfinite(value) else "n/a"


QUALITY_RGB: Final[dict[str, str]] = {"good": "tab:green", "review": "tab:orange", "unreliable": "tab:red"}


def preview_png_bytes(result: ReconResult, quality: dict[str, Any] | None = None) -> bytes:
    """The preview image (PNG bytes) of a reconstruction; ``quality`` adds its level (and first reasons)."""
    verts = np.asarray(result.vertices, dtype=np.float64)
    faces = np.asarray(result.faces, dtype=np.int64)
    ed, es = int(result.ed_frame), int(result.es_frame)
    fig = Figure(figsize=(13.0, 8.0), dpi=DPI)
    FigureCanvasAgg(fig)
    # Fixed margins instead of tight_layout, which costs an extra full draw.
    grid = fig.add_gridspec(
        2, len(PREVIEW_VIEWS) * 2, height_ratios=[1.6, 1.0],
        left=0.06, right=0.98, top=0.95, bottom=0.07, wspace=0.45, hspace=0.3,
    )
    mesh_axes: list[Axes] = []
    for i, view in enumerate(PREVIEW_VIEWS):
        for j, (frame, rgb, label) in enumerate(((ed, ED_RGB, "ED"), (es, ES_RGB, "ES"))):
            ax = fig.add_subplot(grid[0, 2 * i + j])
            _draw_mesh(ax, verts[frame], faces, view, rgb, f"{label} (frame {frame}) — {view} plane")
            mesh_axes.append(ax)
    _share_limits(mesh_axes, verts[[ed, es]], PREVIEW_VIEWS)

    ax = fig.add_subplot(grid[1, :])
    times = np.asarray(result.frame_times_s, dtype=np.float64)
    vols = np.asarray(result.volumes_ml, dtype=np.float64)
    ok = np.isfinite(vols)
    ax.plot(times[ok], vols[ok], "-o", color="0.2", markersize=3, linewidth=1.5)
    for frame, rgb, label in ((ed, ED_RGB, "ED"), (es, ES_RGB, "ES")):
        if np.isfinite(vols[frame]):
            ax.plot(
                [times[frame]], [vols[frame]], "o", color=tuple(rgb), markersize=9,
                label=f"{label} {vols[frame]:.1f} mL",
            )
    ax.set_xlabel("time from ED (s)")
    ax.set_ylabel("LV volume (mL)")
    ax.grid(True, alpha=0.3)
    if ok.any():
        ax.legend(loc="best", fontsize=8)
    ax.set_title(
        f"EDV {_fmt(result.edv_ml, 'mL')}   ESV {_fmt(result.esv_ml, 'mL')}   EF {_fmt(result.ef_percent, '%')}",
        fontsize=12,
    )
    if quality is not None:
        reasons = quality.get("reasons", [])
        first = f"  —  {reasons[0][:100]}" + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else "") \
            if reasons else ""
        fig.text(0.5, 0.999, f"quality: {quality['level'].upper()} (score {quality['score']:.2f}){first}",
                 ha="center", va="top", fontsize=9, color=QUALITY_RGB.get(quality["level"], "black"), weight="bold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def render_preview(result: ReconResult, path: Path, quality: dict[str, Any] | None = None) -> Path:
    """Write ``preview.png`` (mesh at ED and ES in the A4C/A2C planes and the volume curve
    with ED/ES marked, EDV/ESV/EF in the title, the quality level on top) atomically; returns ``path``."""
    return atomic_write_bytes(Path(path), preview_png_bytes(result, quality))


def _share_limits(axes: list[Axes], frames: NDArray[np.float64], views: tuple[str, ...]) -> None:
    """One mm scale for every mesh panel, apex at the top (y axis inverted)."""
    lat = np.concatenate([frames @ plane_axes(VIEW_ANGLES_DEG[v])[:, 0] for v in views])
    z = frames[..., 2]
    half = 0.5 * max(float(np.ptp(lat)), 1e-6) * 1.08
    mid = 0.5 * (float(lat.max()) + float(lat.min()))
    z_lo, z_hi = float(z.min()), float(z.max())
    pad = 0.04 * max(z_hi - z_lo, 1e-6)
    for ax in axes:
        ax.set_xlim(mid - half, mid + half)
        ax.set_ylim(z_hi + pad, z_lo - pad)
