"""Preview PNG of a case: the three view masks and the shaded cavity at ED and ES.

``render_preview`` composes the picture with Pillow (masks pasted as tiles, the cavity drawn
as Lambert-shaded triangles in painter's order, i.e. projections on the x–z and y–z planes):
~50 ms a case instead of ~1 s with matplotlib, which matters when generating thousands of
cases. ``render_histograms`` (docs figures) uses a matplotlib Figure with the Agg canvas
directly, no pyplot global state.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from models.geometry.mesh import Mesh

FloatArray = NDArray[np.float64]
TILE = 224
_LABEL_H = 14


def _shaded_tile(
    mesh: Mesh, axes: tuple[int, int], depth_axis: int, lo: FloatArray, hi: FloatArray
) -> NDArray[np.uint8]:
    """RGB tile (TILE, TILE, 3) of ``mesh`` projected on ``axes`` (apex at the top), viewer on
    the −``depth_axis`` side, Lambert shading, painter's algorithm (far faces first)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (TILE, TILE), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    tri = mesh.triangles
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    towards_viewer = np.zeros(3)
    towards_viewer[depth_axis] = -1.0
    facing = normal @ towards_viewer > 0
    light_dir = towards_viewer + np.array([0.0, 0.0, -0.5])
    light = np.clip(normal @ (light_dir / np.linalg.norm(light_dir)), 0.0, 1.0)
    a, b = axes
    span = float(max(hi[a] - lo[a], hi[b] - lo[b]))
    scale = (TILE - 8) / span
    off_a = 4 + 0.5 * ((TILE - 8) - (hi[a] - lo[a]) * scale)
    px = (tri[:, :, a] - lo[a]) * scale + off_a
    py = (tri[:, :, b] - lo[b]) * scale + 4
    order = np.argsort(tri[:, :, depth_axis].mean(axis=1))[::-1]
    for f in order[facing[order]]:
        s = 0.3 + 0.7 * float(light[f])
        colour = (int(215 * s), int(80 * s), int(80 * s))
        draw.polygon([(px[f, k], py[f, k]) for k in range(3)], fill=colour, outline=colour)
    return np.asarray(img)


def render_preview(
    masks: Mapping[str, NDArray[np.uint8]],
    meshes: Mapping[str, Mesh],
    title: str,
) -> bytes:
    """PNG bytes: one row per phase (``masks[view]`` is (2, H, W) for [ED, ES]; ``meshes`` has
    'ED' and 'ES'), columns = views, then the cavity projected on the x–z plane (the A4C plane,
    seen from −y) and on the y–z plane (seen from −x); apex at the top as in the echo image."""
    from PIL import Image, ImageDraw

    views = list(masks)
    phases = ["ED", "ES"]
    ncol = len(views) + 2
    width = ncol * (TILE + 4)
    height = 2 * (TILE + _LABEL_H + 4) + 20
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 4), title, fill=(0, 0, 0))
    allv = np.concatenate([m.vertices for m in meshes.values()])
    lo, hi = allv.min(axis=0) - 3.0, allv.max(axis=0) + 3.0
    for r, phase in enumerate(phases):
        y0 = 20 + r * (TILE + _LABEL_H + 4)
        tiles: list[tuple[str, NDArray[np.uint8]]] = []
        for view in views:
            m = np.asarray(masks[view][r], dtype=np.uint8) * 255
            tile = Image.fromarray(m).resize((TILE, TILE), Image.Resampling.NEAREST).convert("RGB")
            tiles.append((f"{view} {phase}", np.asarray(tile)))
        tiles.append((f"mesh {phase} x-z", _shaded_tile(meshes[phase], (0, 2), 1, lo, hi)))
        tiles.append((f"mesh {phase} y-z", _shaded_tile(meshes[phase], (1, 2), 0, lo, hi)))
        for c, (label, arr) in enumerate(tiles):
            x0 = c * (TILE + 4) + 2
            draw.text((x0 + 2, y0), label, fill=(0, 0, 0))
            canvas.paste(Image.fromarray(arr), (x0, y0 + _LABEL_H))
            draw.rectangle([x0 - 1, y0 + _LABEL_H - 1, x0 + TILE, y0 + _LABEL_H + TILE], outline=(150, 150, 150))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def render_histograms(columns: Mapping[str, FloatArray], title: str) -> bytes:
    """PNG bytes of one histogram per named column (cohort statistics figure)."""
    from matplotlib.figure import Figure

    names = list(columns)
    fig = Figure(figsize=(3.2 * len(names), 3.0))
    axs = fig.subplots(1, len(names), squeeze=False)
    for ax, name in zip(axs[0], names, strict=True):
        ax.hist(np.asarray(columns[name]), bins=30, color="#4878a8")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    return buf.getvalue()
