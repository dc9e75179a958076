"""Accuracy benchmark of the reconstruction against exact ground truth (``echo4d bench accuracy``).

For every case: reconstruct from clean or corrupted masks, rigidly align the reconstruction to
the ground truth at ED (point-to-plane ICP, no scaling; the same transform for every frame:
the reconstruction lives in the frame of its anchored probe, the truth in the canonical one),
then score at ED and ES:

* surface distances MAE/RMSE/Hausdorff/Chamfer (mm) and volumetric Dice/IoU;
* seen views: Dice/IoU of the reconstruction sliced in each fitted plane vs the input masks;
* unseen views (every view not given to the reconstruction): the aligned reconstruction sliced
  in the view's TRUE plane vs its clean mask (inside the sector), at ED and over all frames;
* EDV/ESV/EF errors, beside the clinical biplane method of disks (Simpson's) computed from the
  same input masks (EDV/ESV = largest/smallest biplane volume over the frames).

Compute only: the caller supplies cases, the prior and the device; I/O is in :func:`write_accuracy`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import NDArray

from models.bench.metrics import (
    apply_rigid,
    mask_dice,
    mask_iou,
    rigid_align,
    sample_surface,
    surface_distances,
    volumetric_overlap,
)
from models.bench.simpson import simpson_biplane_volume_ml, simpson_single_plane_volume_ml
from models.geometry.frames import VIEW_NAMES, ImagePlane
from models.geometry.mesh import Mesh, mesh_volume_ml
from models.geometry.sector import sector_mask
from models.recon.pipeline import ReconConfig, reconstruct_study
from models.recon.shape_model import ReconPrior
from models.study import Study, ViewSequence

if TYPE_CHECKING:
    from models.prior.model import ShapePrior

Targets = dict[str, tuple[str, float]]
"""Summary column → (``<=`` or ``>=``, value), compared with the column's mean."""

TARGETS: Targets = {
    "ed_mae_mm": ("<=", 0.85),
    "ed_hausdorff_mm": ("<=", 4.5),
    "unseen_dice_mean": (">=", 0.955),
    "edv_error_ratio_simpson_over_ours": (">=", 2.0),
    "esv_error_ratio_simpson_over_ours": (">=", 2.0),
    "ef_error_ratio_simpson_over_ours": (">=", 2.0),
}
"""Issue #14's targets (means): surface error, unseen-view Dice (A4C+A3C → A2C), and each mean absolute
volume / EF error at most half of Simpson's on the same masks (Simpson's / ours ≥ 2)."""

REAL_LV_TARGETS: Targets = {f"{w}_error_ratio_simpson_over_ours": (">=", 1.0) for w in ("edv", "esv", "ef")}
"""Issue #14's targets on the real LV: each mean absolute error below Simpson's on the same masks."""


@dataclass(frozen=True)
class TruthCase:
    """A case with exact ground truth: meshes (T, N, 3) mm on one topology, true view planes,
    clean and corrupted masks per view (T, H, W), pixel spacing and frame rate."""

    name: str
    vertices: NDArray[np.float64]
    faces: NDArray[np.int64]
    planes: dict[str, ImagePlane]
    masks_clean: dict[str, NDArray[np.uint8]]
    masks_noisy: dict[str, NDArray[np.uint8]]
    spacing_mm: tuple[float, float]
    fps: float
    sector_half_angle_deg: float = 40.0
    info: dict[str, Any] = field(default_factory=dict)

    def mesh(self, t: int) -> Mesh:
        return Mesh(self.vertices[t], self.faces)

    @property
    def volumes_ml(self) -> NDArray[np.float64]:
        return np.array([mesh_volume_ml(self.mesh(t)) for t in range(len(self.vertices))])

    def study(self, noisy: bool, views: Sequence[str]) -> Study:
        masks = self.masks_noisy if noisy else self.masks_clean
        return Study({v: ViewSequence(v, masks[v], self.spacing_mm, self.fps) for v in VIEW_NAMES if v in views})


def cohort_truth(seed: int, n_frames: int = 20) -> TruthCase:
    """Case ``seed`` of the synthetic cohort (views under its random probe perturbations)."""
    from models.cohort.generate import CohortConfig, generate_case

    cfg = CohortConfig(n_frames=n_frames, sdf=False, preview=False)
    case = generate_case(seed, cfg)
    return TruthCase(
        name=f"cohort-{seed}", vertices=case.cycle.vertices, faces=case.cycle.faces, planes=dict(case.planes),
        masks_clean=dict(case.masks_clean), masks_noisy=dict(case.masks_noisy),
        spacing_mm=(float(cfg.spacing_mm[0]), float(cfg.spacing_mm[1])), fps=case.fps,
        sector_half_angle_deg=cfg.sector_half_angle_deg,
        info={"seed": seed, "phenotype": case.subject.phenotype,
              "foreshortening_mm": {v: float(p.foreshortening_mm) for v, p in case.perturbations.items()}},
    )


def real_lv_truth(path: str | Path, seed: int = 0, perturbation_strength: float = 1.0) -> TruthCase:
    """The real 4D LV (biv-me) in the canonical frame, ED first, with simulated views."""
    from models.cohort.corruption import corrupt_masks
    from models.cohort.simulator import sample_perturbation, simulate_sequence
    from models.geometry.canonical import load_real_lv_4d
    from models.geometry.frames import DEFAULT_IMAGE_SHAPE, DEFAULT_PIXEL_SPACING_MM

    real = load_real_lv_4d(path)
    verts = np.roll(np.asarray(real["vertices"], dtype=np.float64), -int(real["ed_frame"]), axis=0)
    faces = np.asarray(real["faces"], dtype=np.int64)
    times = np.asarray(real["frame_times_ms"], dtype=np.float64)
    fps = 1000.0 * len(times) / float(times[-1] - times[0] + np.median(np.diff(times)))
    rng = np.random.default_rng(seed)
    length = float(np.linalg.norm(real["mitral_centre"]))
    planes, clean, noisy, fs = {}, {}, {}, {}
    for view in VIEW_NAMES:
        pert = sample_perturbation(rng, perturbation_strength, length)
        fs[view] = float(pert.foreshortening_mm)
        clean[view], planes[view] = simulate_sequence(verts, faces, view, pert, DEFAULT_IMAGE_SHAPE,
                                                      DEFAULT_PIXEL_SPACING_MM)
        noisy[view] = corrupt_masks(clean[view], rng)
    return TruthCase(f"real-lv-4d-s{seed}", verts, faces, planes, clean, noisy,
                     (float(DEFAULT_PIXEL_SPACING_MM[0]), float(DEFAULT_PIXEL_SPACING_MM[1])), fps,
                     info={"source": "biv-me patient 1", "seed": seed, "perturbation_strength": perturbation_strength,
                           "foreshortening_mm": fs})


@dataclass(frozen=True)
class AccuracyOptions:
    """What to benchmark: profile, ablation, input views, clean or corrupted masks, and
    ``overrides`` of reconstruction settings (``ReconConfig.with_overrides``)."""

    profile: str = "default"
    ablation: str = "none"
    views: tuple[str, ...] = VIEW_NAMES
    noisy: bool = False
    seed: int = 0
    surface_samples: int = 10000
    voxel_mm: float = 1.0
    overrides: tuple[tuple[str, str], ...] = ()


def _fan(shape: tuple[int, int], spacing: tuple[float, float], half_angle: float) -> NDArray[np.bool_]:
    out: NDArray[np.bool_] = sector_mask(shape, spacing, half_angle).astype(bool)
    return out


def _simpson(masks: dict[str, NDArray[np.uint8]], spacing: tuple[float, float]) -> dict[str, Any] | None:
    """Biplane (A4C+A2C) or single-plane volumes over all frames → EDV/ESV/EF by the method of disks."""
    n = len(next(iter(masks.values())))
    try:
        if "A4C" in masks and "A2C" in masks:
            vols = [simpson_biplane_volume_ml(masks["A4C"][t], spacing, masks["A2C"][t], spacing) for t in range(n)]
            method = "biplane"
        elif "A4C" in masks or "A2C" in masks:
            m = masks["A4C"] if "A4C" in masks else masks["A2C"]
            vols = [simpson_single_plane_volume_ml(m[t], spacing) for t in range(n)]
            method = "single-plane"
        else:
            return None
    except ValueError:
        return None
    edv, esv = float(max(vols)), float(min(vols))
    return {"edv_ml": edv, "esv_ml": esv, "ef_percent": 100.0 * (edv - esv) / edv, "method": method}


def evaluate_case(truth: TruthCase, prior: ShapePrior | ReconPrior, options: AccuracyOptions, device: torch.device,
                  config: ReconConfig | None = None) -> dict[str, Any]:
    """Reconstruct ``truth`` and score it (one row of the benchmark table). ``config`` overrides the
    reconstruction settings that ``options`` (profile, ablation, seed) would give."""
    cfg = config or ReconConfig.from_profile(options.profile, seed=options.seed).with_ablation(
        options.ablation).with_overrides(options.overrides)
    study = truth.study(options.noisy, options.views)
    start = time.perf_counter()
    result = reconstruct_study(study, prior, cfg, device)
    seconds = time.perf_counter() - start
    source = result.extras["source_frames"][study.view_names[0]]
    frame_meshes = result.extras.get("frame_meshes")
    preds = frame_meshes if frame_meshes is not None else [
        Mesh(result.vertices[t], result.faces) for t in range(result.n_frames)]
    true_vol = truth.volumes_ml
    t_ed, t_es = int(np.argmax(true_vol)), int(np.argmin(true_vol))
    rec_ed = source.index(t_ed) if t_ed in source else 0
    four_d = result.n_frames > 1 and t_es in source
    rec_es = source.index(t_es) if four_d else rec_ed
    rot, trans = rigid_align(sample_surface(preds[rec_ed], 4000, options.seed), truth.mesh(t_ed))
    aligned = [apply_rigid(m, rot, trans) for m in preds]
    row: dict[str, Any] = {"case": truth.name, **{k: v for k, v in truth.info.items() if isinstance(v, int | str)}}
    for tag, rec_t, true_t in (("ed", rec_ed, t_ed), ("es", rec_es, t_es))[: 2 if four_d else 1]:
        sd = surface_distances(aligned[rec_t], truth.mesh(true_t), options.surface_samples, options.seed)
        row.update({f"{tag}_{k}": v for k, v in sd.as_dict().items()})
        dice, iou = volumetric_overlap(aligned[rec_t], truth.mesh(true_t), options.voxel_mm)
        row[f"{tag}_vol_dice"], row[f"{tag}_vol_iou"] = dice, iou
    for fit in result.view_fits:
        row[f"seen_{fit.view}_dice_ed"], row[f"seen_{fit.view}_iou_ed"] = fit.dice_ed, fit.iou_ed
        row[f"seen_{fit.view}_dice_mean"], row[f"seen_{fit.view}_iou_mean"] = fit.dice_mean, fit.iou_mean
    row.update(_foreshortening_columns(truth, result.view_fits, t_ed))
    row["seen_dice_mean"] = float(np.mean([f.dice_mean for f in result.view_fits]))
    row["seen_iou_mean"] = float(np.mean([f.iou_mean for f in result.view_fits]))
    from models.geometry.slicing import slice_mask

    unseen = [v for v in VIEW_NAMES if v not in options.views and v in truth.planes]
    unseen_all: list[float] = []
    for v in unseen:
        plane = truth.planes[v]
        fan = _fan(plane.shape, plane.spacing_mm, truth.sector_half_angle_deg)
        dices = []
        for t, mesh in enumerate(aligned):
            pred = slice_mask(mesh, plane).astype(bool) & fan
            ref = truth.masks_clean[v][source[t]].astype(bool) & fan
            dices.append(mask_dice(pred, ref))
            if t == rec_ed:
                row[f"unseen_{v}_dice_ed"], row[f"unseen_{v}_iou_ed"] = dices[-1], mask_iou(pred, ref)
        row[f"unseen_{v}_dice_mean"] = float(np.mean(dices))
        unseen_all.append(float(np.mean(dices)))
    if unseen_all:
        row["unseen_dice_mean"] = float(np.mean(unseen_all))
    edv, esv = float(true_vol[t_ed]), float(true_vol[t_es])
    ef = 100.0 * (edv - esv) / edv
    row.update({"true_edv_ml": edv, "true_esv_ml": esv, "true_ef_percent": ef, "edv_ml": result.edv_ml,
                "edv_error_ml": result.edv_ml - edv, "abs_edv_error_ml": abs(result.edv_ml - edv)})
    if four_d and frame_meshes is None:
        row["es_correspondence_mm"] = correspondence_error_mm(aligned[rec_ed], aligned[rec_es], truth.mesh(t_ed),
                                                              truth.mesh(t_es))
    if four_d:
        row["volumes_ml"] = [round(float(v), 2) for v in result.volumes_ml]
        row["true_volumes_ml"] = [round(float(true_vol[s]), 2) for s in source]
        row["volume_jitter"] = volume_jitter(result.volumes_ml, true_vol[source])
        row.update({"esv_ml": result.esv_ml, "ef_percent": result.ef_percent, "esv_error_ml": result.esv_ml - esv,
                    "ef_error": result.ef_percent - ef, "abs_ef_error": abs(result.ef_percent - ef),
                    "abs_esv_error_ml": abs(result.esv_ml - esv)})
    simpson = _simpson({v: (truth.masks_noisy if options.noisy else truth.masks_clean)[v] for v in options.views},
                       truth.spacing_mm)
    if simpson is not None:
        row.update({"simpson_edv_ml": simpson["edv_ml"], "simpson_esv_ml": simpson["esv_ml"],
                    "simpson_ef_percent": simpson["ef_percent"],
                    "simpson_abs_edv_error_ml": abs(simpson["edv_ml"] - edv),
                    "simpson_abs_esv_error_ml": abs(simpson["esv_ml"] - esv),
                    "simpson_abs_ef_error": abs(simpson["ef_percent"] - ef)})
    row.update({"seconds": seconds, **{f"time_{k}_s": v for k, v in result.timings_s.items()},
                "anchor_steps": result.extras.get("anchor_steps"), "motion_steps": result.extras.get("motion_steps"),
                "n_warnings": len(result.warnings)})
    return row


def volume_jitter(volumes: NDArray[np.float64], true_volumes: NDArray[np.float64]) -> float:
    """Frame-to-frame jitter of a reconstructed volume curve (T,) against the true one (T,): the mean
    absolute second difference of their ratio (0 for any smooth multiple of the truth, ~0.03 where the
    curve jumps by 3 % between frames). Jitter inflates the EDV (the largest frame) and deflates the ESV."""
    ratio = np.asarray(volumes, dtype=np.float64) / np.asarray(true_volumes, dtype=np.float64)
    return float(np.abs(np.diff(ratio, 2)).mean()) if len(ratio) > 2 else 0.0


def _foreshortening_columns(truth: TruthCase, fits: Sequence[Any], t_ed: int) -> dict[str, Any]:
    """Per view: the simulated foreshortening (mm, 0 when none), how far the true plane misses the
    true apex and how far the fitted plane misses the reconstruction's apex (mm); ``foreshortened``
    is 1 when any view was foreshortened by the simulator."""
    from models.recon.poses import apex_miss_mm

    sim = truth.info.get("foreshortening_mm", {})
    verts = truth.vertices[t_ed]
    apex = verts[int(np.argmin(verts[:, 2]))]
    out: dict[str, Any] = {"foreshortened": int(any(sim.get(f.view, 0.0) > 0 for f in fits))}
    for f in fits:
        out[f"fs_sim_{f.view}_mm"] = float(sim.get(f.view, 0.0))
        if f.view in truth.planes:
            out[f"apex_miss_true_{f.view}_mm"] = apex_miss_mm(truth.planes[f.view].pose, apex)
        if f.foreshortening_mm is not None:
            out[f"apex_miss_fit_{f.view}_mm"] = float(f.foreshortening_mm)
    return out


def correspondence_error_mm(rec_ed: Mesh, rec_es: Mesh, true_ed: Mesh, true_es: Mesh) -> float:
    """Mean distance (mm) at ES between each reconstructed vertex and the true material point it started
    on at ED (its nearest true ED vertex, followed along the truth's shared topology).

    Checks that the vertices move with the wall, not only that the ES surface is right: a mesh that
    slides along the surface scores its surface error plus the slide.
    """
    from scipy.spatial import cKDTree

    _, j = cKDTree(true_ed.vertices).query(rec_ed.vertices)
    return float(np.linalg.norm(rec_es.vertices - true_es.vertices[j], axis=1).mean())


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """mean, std, median, p90, min, max and count of every numeric column (finite values)."""
    out: dict[str, dict[str, float]] = {}
    for k in dict.fromkeys(k for r in rows for k in r):
        if k == "seed":
            continue
        vals = np.array([r[k] for r in rows if isinstance(r.get(k), int | float) and not isinstance(r.get(k), bool)],
                        dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        if not len(vals):
            continue
        out[k] = {"mean": float(vals.mean()), "std": float(vals.std()), "median": float(np.median(vals)),
                  "p90": float(np.percentile(vals, 90)), "min": float(vals.min()), "max": float(vals.max()),
                  "n": float(len(vals))}
    return out


def run_accuracy(cases: Iterable[TruthCase], prior: ShapePrior | ReconPrior, options: AccuracyOptions,
                 device: torch.device, progress: Callable[[int, dict[str, Any]], None] | None = None,
                 targets: Targets = TARGETS) -> dict[str, Any]:
    """Evaluate every case; returns ``{"options", "rows", "summary", "targets"}`` (JSON-ready)."""
    rows = []
    for i, truth in enumerate(cases):
        row = evaluate_case(truth, prior, options, device)
        rows.append(row)
        if progress is not None:
            progress(i, row)
    return accuracy_document(rows, options, targets)


def accuracy_document(rows: Sequence[dict[str, Any]], options: AccuracyOptions,
                      targets: Targets = TARGETS) -> dict[str, Any]:
    """The benchmark document of per-case ``rows``: summary statistics, Simpson ratios, status of ``targets``."""
    summary = _with_ratios(summarise(rows)) if rows else {}
    subsets = {name: _with_ratios(summarise(sub)) for name, flag in SUBSETS.items()
               if (sub := [r for r in rows if r.get("foreshortened") == flag])}
    return {"options": asdict(options), "rows": list(rows), "summary": summary, "subsets": subsets,
            "targets": _target_status(summary, targets)}


SUBSETS = {"foreshortened": 1, "not foreshortened": 0}
"""Row subsets reported beside the whole: cases with at least one foreshortened view, and the others."""


def _with_ratios(summary: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """``summary`` plus Simpson's / ours mean absolute EDV, ESV (4D only) and EF (4D only) errors."""
    for which, ours_key, theirs_key in (("edv", "abs_edv_error_ml", "simpson_abs_edv_error_ml"),
                                        ("esv", "abs_esv_error_ml", "simpson_abs_esv_error_ml"),
                                        ("ef", "abs_ef_error", "simpson_abs_ef_error")):
        if theirs_key in summary and ours_key in summary:
            ours = summary[ours_key]["mean"]
            theirs = summary[theirs_key]["mean"]
            summary[f"{which}_error_ratio_simpson_over_ours"] = {"mean": theirs / ours if ours > 0 else math.inf}
    return summary


def _target_status(summary: dict[str, dict[str, float]], targets: Targets) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, (op, target) in targets.items():
        if key not in summary:
            continue
        value = summary[key]["mean"]
        ok = value <= target if op == "<=" else value >= target
        out[key] = {"statistic": "mean", "value": value, "target": target, "op": op, "met": bool(ok)}
    return out


MARKDOWN_ROWS = [
    ("ED MAE (mm)", "ed_mae_mm"), ("ED RMSE (mm)", "ed_rmse_mm"), ("ED Hausdorff (mm)", "ed_hausdorff_mm"),
    ("ED Chamfer (mm)", "ed_chamfer_mm"), ("ES MAE (mm)", "es_mae_mm"), ("ES Hausdorff (mm)", "es_hausdorff_mm"),
    ("ED volumetric Dice", "ed_vol_dice"), ("ED volumetric IoU", "ed_vol_iou"), ("ES volumetric Dice", "es_vol_dice"),
    ("seen-view Dice (mean over frames)", "seen_dice_mean"), ("seen-view IoU (mean over frames)", "seen_iou_mean"),
    ("unseen-view Dice (mean over frames)", "unseen_dice_mean"),
    ("|EDV error| (mL)", "abs_edv_error_ml"), ("|ESV error| (mL)", "abs_esv_error_ml"),
    ("|EF error| (points)", "abs_ef_error"), ("ES vertex correspondence error (mm)", "es_correspondence_mm"),
    ("volume-curve jitter (ours / true: mean abs 2nd difference)", "volume_jitter"),
    ("Simpson |EDV error| (mL)", "simpson_abs_edv_error_ml"),
    ("Simpson |ESV error| (mL)", "simpson_abs_esv_error_ml"), ("Simpson |EF error| (points)", "simpson_abs_ef_error"),
    ("seconds per case", "seconds"),
]


def accuracy_markdown(doc: dict[str, Any]) -> str:
    """A markdown table (mean ± std, median, p90) of the main metrics of a benchmark document."""
    s = doc["summary"]
    o = doc["options"]
    lines = [f"profile `{o['profile']}`, ablation `{o['ablation']}`, views {'+'.join(o['views'])}, "
             f"{'corrupted' if o['noisy'] else 'clean'} masks, {len(doc['rows'])} cases", "",
             "| metric | mean ± std | median | p90 |", "|---|---|---|---|"]
    for label, key in MARKDOWN_ROWS:
        if key in s:
            m = s[key]
            lines.append(f"| {label} | {m['mean']:.3f} ± {m['std']:.3f} | {m['median']:.3f} | {m['p90']:.3f} |")
    for which in ("edv", "esv", "ef"):
        key = f"{which}_error_ratio_simpson_over_ours"
        if key in s:
            lines.append(f"| Simpson / ours mean |{which.upper()} error| | {s[key]['mean']:.2f} | | |")
    subsets = doc.get("subsets", {})
    if subsets:
        lines += ["", "| subset | cases | ED MAE (mm) | ED HD (mm) | \\|EDV err\\| ours / Simpson (mL) | "
                  "\\|ESV err\\| ours / Simpson (mL) | \\|EF err\\| ours / Simpson (points) |",
                  "|---|---|---|---|---|---|---|"]
        for name, sub in subsets.items():
            cells = [_pair(sub, f"abs_{w}", f"simpson_abs_{w}") for w in ("edv_error_ml", "esv_error_ml", "ef_error")]
            lines.append(f"| {name} | {int(sub['ed_mae_mm']['n'])} | {sub['ed_mae_mm']['mean']:.3f} | "
                         f"{sub['ed_hausdorff_mm']['mean']:.2f} | " + " | ".join(cells) + " |")
    met = doc.get("targets", {})
    if met:
        lines += ["", "targets: " + ", ".join(
            f"{k} {v['statistic']} {v['value']:.3f} {v['op']} {v['target']} → {'met' if v['met'] else 'MISSED'}"
            for k, v in met.items())]
    return "\n".join(lines) + "\n"


def _pair(summary: dict[str, dict[str, float]], ours: str, theirs: str) -> str:
    """``"ours / Simpson's"`` mean of two columns, ``—`` where absent."""
    if ours not in summary or theirs not in summary:
        return "—"
    return f"{summary[ours]['mean']:.2f} / {summary[theirs]['mean']:.2f}"


def write_accuracy(doc: dict[str, Any], out_dir: Path, tag: str) -> tuple[Path, Path]:
    """Write ``accuracy-<tag>.json`` and ``accuracy-<tag>.md`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / f"accuracy-{tag}.json"
    md = out_dir / f"accuracy-{tag}.md"
    js.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    md.write_text(accuracy_markdown(doc))
    return js, md
