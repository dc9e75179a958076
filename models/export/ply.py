"""``ed.ply`` / ``es.ply``: one frame's mesh as binary little-endian PLY (float32 mm, int32 faces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from models.export.atomic import atomic_write_bytes


def ply_bytes(vertices: NDArray[np.float64], faces: NDArray[np.int64], comment: str | None = None) -> bytes:
    """PLY content for vertices (N, 3) mm and triangles (F, 3)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"write_ply needs vertices (N, 3) and faces (F, 3), got {v.shape} and {f.shape}")
    if not np.isfinite(v).all():
        raise ValueError("vertices hold non-finite values")
    if f.size and (f.min() < 0 or f.max() >= len(v) or f.max() > np.iinfo(np.int32).max):
        raise ValueError("faces index vertices out of range")
    lines = ["ply", "format binary_little_endian 1.0", "comment units mm (echo4d canonical LV frame)"]
    if comment:
        text = " ".join(comment.split()).encode("ascii", "replace").decode("ascii")
        lines.append("comment " + text)
    lines += [
        f"element vertex {len(v)}",
        "property float x",
        "property float y",
        "property float z",
        f"element face {len(f)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    header = ("\n".join(lines) + "\n").encode("ascii")
    face_rec = np.empty(len(f), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face_rec["n"] = 3
    face_rec["idx"] = f
    return header + v.astype("<f4").tobytes() + face_rec.tobytes()


def write_ply(
    vertices: NDArray[np.float64], faces: NDArray[np.int64], path: Path, comment: str | None = None
) -> Path:
    """Write a binary little-endian PLY atomically; returns ``path``."""
    return atomic_write_bytes(Path(path), ply_bytes(vertices, faces, comment))
