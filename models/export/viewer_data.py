"""``views.json``: each input view's masks with the fitted contour, per reconstructed frame (for the web viewer).

For every view the reconstruction fitted, and every reconstructed frame ``t``:

- ``mask``: the observed LV mask the fit saw (the study's frame ``source_frame``), and
- ``fitted``: the reconstruction's frame-``t`` mesh sliced in the fitted imaging plane (what the fit
  "thinks" that view shows; its outline is the fitted contour),

both as row-major run lengths on the view's pixel grid (``counts``: alternating runs of 0 and 1, starting
with 0; they sum to H·W). Dice of the two per frame is given too, so the viewer can show where a fit is poor.
"""

from __future__ import annotations

import json
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from models.geometry.frames import ImagePlane
from models.geometry.mesh import Mesh
from models.geometry.slicing import slice_mask
from models.recon.result import ReconResult
from models.study import Study

VIEWS_NAME: Final[str] = "views.json"
VIEWS_SCHEMA: Final[str] = "echo4d-views/1"


def run_lengths(mask: NDArray[Any]) -> list[int]:
    """Row-major run lengths of a binary (H, W) mask: alternating 0-runs and 1-runs, the first a 0-run (maybe 0)."""
    flat = np.asarray(mask, dtype=bool).ravel()
    if flat.size == 0:
        return []
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], edges, [flat.size]])
    counts = np.diff(bounds).astype(np.int64).tolist()
    return [0, *counts] if flat[0] else counts


def decode_run_lengths(counts: list[int], shape: tuple[int, int]) -> NDArray[np.uint8]:
    """Inverse of :func:`run_lengths`."""
    values = np.arange(len(counts)) % 2
    return np.repeat(values, counts).astype(np.uint8).reshape(shape)


def _dice(a: NDArray[Any], b: NDArray[Any]) -> float:
    total = float(a.sum() + b.sum())
    return 2.0 * float(np.logical_and(a, b).sum()) / total if total else 1.0


def build_view_data(result: ReconResult, study: Study) -> dict[str, Any]:
    """The ``echo4d-views/1`` document of ``result`` reconstructed from ``study`` (plain JSON data)."""
    n_frames = int(result.vertices.shape[0])
    faces = np.asarray(result.faces)
    sources: dict[str, Any] = dict(result.extras.get("source_frames") or {})
    meshes = [Mesh(np.asarray(result.vertices[t], dtype=np.float64), faces) for t in range(n_frames)]
    views = []
    for fit in result.view_fits:
        seq = study.views.get(fit.view)
        if seq is None:
            continue
        h, w = int(seq.masks.shape[1]), int(seq.masks.shape[2])
        plane = ImagePlane((h, w), seq.pixel_spacing_mm, fit.pose)
        src = [int(i) for i in sources.get(fit.view, [])][:n_frames]
        if len(src) < n_frames:  # no mapping: the study's own frames in order (clipped)
            src = [min(t, seq.n_frames - 1) for t in range(n_frames)]
        frames = []
        for t in range(n_frames):
            observed = seq.masks[src[t]].astype(bool)
            fitted = slice_mask(meshes[t], plane).astype(bool)
            frames.append({"source_frame": src[t], "dice": round(_dice(observed, fitted), 4),
                           "mask": run_lengths(observed), "fitted": run_lengths(fitted)})
        views.append({
            "view": fit.view, "shape": [h, w], "pixel_spacing_mm": [float(s) for s in seq.pixel_spacing_mm],
            "fps": float(seq.fps), "dice_ed": float(fit.dice_ed), "dice_mean": float(fit.dice_mean),
            "iou_ed": float(fit.iou_ed), "iou_mean": float(fit.iou_mean),
            "foreshortening_mm": None if fit.foreshortening_mm is None else float(fit.foreshortening_mm),
            "frames": frames,
        })
    return {"schema": VIEWS_SCHEMA, "n_frames": n_frames, "ed_frame": int(result.ed_frame),
            "es_frame": int(result.es_frame), "frame_times_s": [float(x) for x in result.frame_times_s],
            "encoding": "row-major run lengths, alternating 0/1 starting with 0", "views": views}


def dump_view_data(doc: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (the run lengths make an indented file many times larger); NaN refused."""
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")
