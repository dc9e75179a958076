"""Render the beating mesh to RGB frames for a PACS (the multi-frame Secondary Capture): cheap and headless.

A painter's-algorithm renderer on Pillow: orthographic view of the canonical LV frame turned 30°
about the long axis and tilted 15° towards the viewer, apex at the top as in an apical echo view,
faces sorted far to near and filled with two-sided Lambert shading. One scale for every frame (from
the largest frame), so the wall motion shows. A caption band under the mesh gives the time, the
volume and ED/ES. About 0.09 s a frame for 3,144 faces (the real 4D LV, docs/results.md).
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

FRAME_PX: Final = 256
CAPTION_PX: Final = 24
_COLOUR: Final = np.array([205.0, 60.0, 60.0])
_AMBIENT: Final = 0.25


def _view_rotation(yaw_deg: float = 30.0, tilt_deg: float = 15.0) -> NDArray[np.float64]:
    """Rotation (3, 3) from the LV frame to the view: x → image right, z → image down (apex at the top),
    y → depth away from the viewer."""
    a, b = np.radians(yaw_deg), np.radians(tilt_deg)
    yaw = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    tilt = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(b), -np.sin(b)], [0.0, np.sin(b), np.cos(b)]])
    out: NDArray[np.float64] = tilt @ yaw
    return out


def render_frames(vertices: NDArray[np.float64], faces: NDArray[np.int64], captions: list[str]) -> NDArray[np.uint8]:
    """RGB frames (T, FRAME_PX + CAPTION_PX, FRAME_PX, 3) uint8 of vertices (T, N, 3) mm with faces (F, 3),
    one caption per frame."""
    v = np.asarray(vertices, dtype=np.float64) @ _view_rotation().T
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 3 or len(captions) != v.shape[0]:
        raise ValueError(f"need vertices (T, N, 3) and T captions, got {v.shape} and {len(captions)}")
    lo, hi = v[..., [0, 2]].min(axis=(0, 1)), v[..., [0, 2]].max(axis=(0, 1))
    scale = 0.9 * FRAME_PX / max(float((hi - lo).max()), 1e-9)
    centre = (lo + hi) / 2.0
    font = ImageFont.load_default()
    out = np.zeros((v.shape[0], FRAME_PX + CAPTION_PX, FRAME_PX, 3), dtype=np.uint8)
    for k in range(v.shape[0]):
        tri = v[k][f]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        norm = np.linalg.norm(normal, axis=1)
        shade = _AMBIENT + (1.0 - _AMBIENT) * np.abs(np.divide(normal[:, 1], norm, out=np.zeros_like(norm),
                                                                where=norm > 0))
        xy = (tri[..., [0, 2]] - centre) * scale + FRAME_PX / 2.0
        order = np.argsort(-tri[..., 1].mean(axis=1))  # far (large y) first
        colours = np.clip(shade[:, None] * _COLOUR, 0, 255).astype(np.uint8)
        img = Image.new("RGB", (FRAME_PX, FRAME_PX + CAPTION_PX))
        draw = ImageDraw.Draw(img)
        for i in order:
            draw.polygon([tuple(p) for p in xy[i]], fill=tuple(int(c) for c in colours[i]))
        draw.text((6, FRAME_PX + 6), captions[k], fill=(235, 235, 235), font=font)
        out[k] = np.asarray(img)
    return out
