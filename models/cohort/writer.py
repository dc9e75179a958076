"""Write a generated :class:`~models.cohort.generate.Case` to disk.

Layout of ``out_dir`` (see docs/cohort.md)::

    study/          clean masks, an echo4d-study/1 bundle (models.study.save_study)
    study_noisy/    the same views with segmentation-like corruption
    truth.npz       ground truth arrays (below)
    truth.json      parameters, phenotype, EDV/ESV/EF, poses, config, generator version, seed
    preview.png     masks at ED/ES + mesh projections (when cfg.preview)
    sdf.npz         points (T, N, 3) float32, sdf (T, N) float32, bounds (2, 3) (when cfg.sdf)
    bmode/<V>.npy   B-mode cines (T, H, W) uint8 of the clean masks (when cfg.bmode)

``truth.npz``: vertices (T, N, 3) float32 mm, faces (F, 3) int32, volumes_ml (T,) float64,
frame_times_s (T,), contraction (T,), ed_frame, es_frame (scalars), view_names (V,) str,
pose_rotation (V, T, 3, 3), pose_translation_mm (V, T, 3), pose_scale (V, T), image_shape (2,),
spacing_mm (2,). Ground truth lives beside the study bundle, never inside it.

All .npz files are written with fixed zip timestamps, so identical arrays give identical bytes.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.cohort.generate import Case
from models.cohort.preview import render_preview
from models.study import Study, ViewSequence, save_study

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def save_npz_deterministic(path: Path, arrays: dict[str, NDArray[Any]]) -> None:
    """Like ``np.savez_compressed`` but byte-reproducible (fixed member order and timestamps)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def case_study(case: Case, noisy: bool = False) -> Study:
    """The study bundle of a case (clean or corrupted masks); no ground truth inside."""
    masks = case.masks_noisy if noisy else case.masks_clean
    views = {
        v: ViewSequence(v, masks[v], tuple(case.config.spacing_mm), case.fps)  # type: ignore[arg-type]
        for v in case.config.views
    }
    meta = {
        "source": {"generator": case.generator_version, "kind": "synthetic", "masks": "noisy" if noisy else "clean"}
    }
    return Study(views=views, meta=meta)


def truth_arrays(case: Case) -> dict[str, NDArray[Any]]:
    """Ground-truth arrays of ``truth.npz``."""
    cyc = case.cycle
    t = cyc.n_frames
    views = list(case.config.views)
    rot = np.stack([np.broadcast_to(case.planes[v].pose.rotation, (t, 3, 3)) for v in views])
    trans = np.stack([np.broadcast_to(case.planes[v].pose.translation, (t, 3)) for v in views])
    scale = np.array([[case.planes[v].pose.scale] * t for v in views])
    return {
        "vertices": cyc.vertices.astype(np.float32),
        "faces": cyc.faces.astype(np.int32),
        "volumes_ml": cyc.volumes_ml.astype(np.float64),
        "frame_times_s": cyc.frame_times_s.astype(np.float64),
        "contraction": cyc.contraction.astype(np.float64),
        "ed_frame": np.array(cyc.ed_frame, dtype=np.int64),
        "es_frame": np.array(cyc.es_frame, dtype=np.int64),
        "view_names": np.array(views),
        "pose_rotation": rot.astype(np.float64),
        "pose_translation_mm": trans.astype(np.float64),
        "pose_scale": scale.astype(np.float64),
        "image_shape": np.array(case.config.image_shape, dtype=np.int64),
        "spacing_mm": np.array(case.config.spacing_mm, dtype=np.float64),
    }


def truth_document(case: Case) -> dict[str, Any]:
    """Contents of ``truth.json``."""
    cyc = case.cycle
    return {
        "generator_version": case.generator_version,
        "seed": case.seed,
        "split": case.split,
        "phenotype": case.subject.phenotype,
        "edv_ml": cyc.edv_ml,
        "esv_ml": cyc.esv_ml,
        "ef_percent": cyc.ef_percent,
        "ed_frame": cyc.ed_frame,
        "es_frame": cyc.es_frame,
        "n_frames": cyc.n_frames,
        "fps": case.fps,
        "heart_rate_bpm": case.subject.motion.heart_rate_bpm,
        "long_axis_length_mm": case.subject.shape.length_mm,
        "subject": case.subject.to_dict(),
        "views": {
            v: {"perturbation": case.perturbations[v].to_dict(), "pose": case.planes[v].pose.to_dict()}
            for v in case.config.views
        },
        "config": case.config.to_dict(),
        "frame": "canonical LV frame (mm): apex at origin, +z apex→mitral centre, +x lateral (A4C)",
    }


def write_case(case: Case, out_dir: str | Path) -> Path:
    """Write ``case`` to ``out_dir`` (created); returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_study(case_study(case, noisy=False), out / "study")
    save_study(case_study(case, noisy=True), out / "study_noisy")
    save_npz_deterministic(out / "truth.npz", truth_arrays(case))
    (out / "truth.json").write_text(json.dumps(truth_document(case), indent=2, sort_keys=True) + "\n")
    if case.sdf_points is not None and case.sdf_values is not None and case.sdf_bounds is not None:
        save_npz_deterministic(
            out / "sdf.npz",
            {"points": case.sdf_points, "sdf": case.sdf_values, "bounds": np.stack(case.sdf_bounds)},
        )
    if case.bmode is not None:
        (out / "bmode").mkdir(exist_ok=True)
        for v, cine in case.bmode.items():
            np.save(out / "bmode" / f"{v}.npy", cine)
    if case.config.preview:
        cyc = case.cycle
        idx = [cyc.ed_frame, cyc.es_frame]
        png = render_preview(
            {v: case.masks_clean[v][idx] for v in case.config.views},
            {"ED": cyc.mesh(cyc.ed_frame), "ES": cyc.mesh(cyc.es_frame)},
            f"seed {case.seed} · {case.subject.phenotype} · EDV {cyc.edv_ml:.0f} mL · "
            f"ESV {cyc.esv_ml:.0f} mL · EF {cyc.ef_percent:.0f} %",
        )
        (out / "preview.png").write_bytes(png)
    return out
