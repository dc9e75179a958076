"""``reconstruct_study``: masks in, a 4D LV mesh sequence with volumes and EF out.

Stages (names reported to ``progress`` and used as keys of ``timings_s``):

1. ``encode`` — put the views on one phase axis (ED = frame 0), encode every frame's masks.
2. ``anchor`` — test-time optimisation of the ED latent and the probe poses.
3. ``motion`` — per-frame latents + BiLSTM + velocity field, probes frozen.
4. ``mesh`` — marching cubes at ED, Radial SDF Alignment of later frames, volumes, fit scores.

Deterministic for a given ``config.seed`` on a given device and thread count.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from models import __version__
from models.errors import ErrorCode, InputError
from models.geometry.frames import ImagePlane, ProbePose
from models.geometry.mesh import Mesh, mesh_volume_ml
from models.geometry.sector import sector_mask
from models.recon.anchor import fit_anchor
from models.recon.config import GAUGES, ReconConfig
from models.recon.control import ReconstructionCancelled, StageControl, StepsFn
from models.recon.motion import MotionFit, fit_motion, project_to_surface
from models.recon.poses import POSE_INITS, apex_miss_mm, initial_poses, mask_centroid_world
from models.recon.rendering import PixelBank, ProbeParams
from models.recon.result import ReconResult, ViewFit
from models.recon.rsa import extract_mesh, per_frame_meshes, propagate_rsa
from models.recon.shape_model import ReconPrior
from models.recon.temporal import align_views
from models.recon.unseen_anchor import UnseenPool, build_pool
from models.study import STATIC_PHASES, Study, check_static_or_cine

__all__ = ["ReconConfig", "ReconstructionCancelled", "reconstruct_study"]

POOR_FIT_DICE = 0.9
"""A view whose rendered-vs-observed Dice (at ED or averaged over frames) is below this earns a warning."""


def reconstruct_study(study: Study, prior: Any, config: ReconConfig, device: torch.device,
                      progress: Callable[[str, float], None] | None = None,
                      should_stop: Callable[[], bool] | None = None, steps: StepsFn | None = None) -> ReconResult:
    """Reconstruct ``study`` with ``prior`` (a :class:`models.prior.model.ShapePrior` or a
    :class:`ReconPrior`) on ``device``. Raises :class:`InputError` for unusable input and
    :class:`ReconstructionCancelled` when ``should_stop()`` turns true at a stage boundary.
    ``steps(stage, done, total)`` counts each stage's steps (optimiser steps of anchor and motion)."""
    forked = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):
        torch.manual_seed(config.seed)
        return _reconstruct(study, prior, config, device, progress, should_stop, steps)


def _reconstruct(study: Study, prior_in: Any, cfg: ReconConfig, device: torch.device,
                 progress: Callable[[str, float], None] | None, should_stop: Callable[[], bool] | None,
                 steps: StepsFn | None = None) -> ReconResult:
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    warnings: list[str] = []
    prior = prior_in if isinstance(prior_in, ReconPrior) else ReconPrior.from_shape_prior(prior_in)
    prior = prior.to(device)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)

    def stage(name: str, total: int | None = None) -> StageControl:
        control = StageControl(name, progress, should_stop, steps)
        control.check()
        control.report(0.0, 0 if total else None, total)
        return control

    # ---------------------------------------------------------------- encode
    control = stage("encode", 1)
    t0 = time.perf_counter()
    if cfg.views is not None:
        study = study.subset(list(cfg.views))
    if not study.view_names:
        raise InputError("the study has no view to reconstruct from", code=ErrorCode.MISSING_VIEW, field="views")
    check_static_or_cine(study.views)
    aligned = align_views(study, None if study.is_static else cfg.n_frames)
    warnings.extend(aligned.warnings)
    names = study.view_names
    masks = {v: aligned.masks[v] for v in names}
    if cfg.ed_only:
        masks = {v: m[:1] for v, m in masks.items()}
    n_frames = int(next(iter(masks.values())).shape[0])
    frame_times = aligned.frame_times_s[:n_frames] - aligned.frame_times_s[0]
    spacing = {v: study.views[v].pixel_spacing_mm for v in names}
    observed = {v: _observed_region(masks[v].shape[1:], spacing[v], cfg.sector_half_angle_deg) for v in names}
    z_enc = prior.encode_frames(masks, spacing, device).to(device).float()
    timings["encode"] = time.perf_counter() - t0
    control.report(1.0, 1, 1)

    # ---------------------------------------------------------------- anchor (ED)
    control = stage("anchor")
    t0 = time.perf_counter()
    if cfg.gauge not in GAUGES:
        raise InputError(f"unknown gauge {cfg.gauge!r}; expected one of {', '.join(GAUGES)}",
                         code=ErrorCode.VALIDATION_FAILED, field="gauge")
    if cfg.pose_init not in POSE_INITS:
        raise InputError(f"unknown pose initialisation {cfg.pose_init!r}; expected one of {', '.join(POSE_INITS)}",
                         code=ErrorCode.VALIDATION_FAILED, field="pose_init")
    init = initial_poses(names, [masks[v][0] for v in names], [spacing[v] for v in names], cfg.pose_init,
                         multi_start=cfg.anchor.foreshortening_probe_steps > 0)
    poses0 = init.poses
    # one view has nothing to move relative to: it is the gauge whatever the setting
    fixed = 0 if len(names) == 1 else {"anchor": 0, "longest": init.longest}.get(cfg.gauge)
    anchored = [i == fixed for i in range(len(names))]
    centroids = np.stack([mask_centroid_world(masks[v][0], spacing[v], p) for v, p in zip(names, poses0, strict=True)])
    probes = ProbeParams(poses0, centroids, anchored=anchored, optimise_scale=cfg.anchor.optimise_scale,
                         bases_mm=init.pivots).to(device)
    bank_ed = PixelBank.build([masks[v][:1] for v in names], [spacing[v] for v in names], device,
                              sigma_mm=cfg.boundary_sigma_mm, observed=[observed[v] for v in names])
    z_ed = z_enc[0]
    anchor_info: dict[str, Any] = {"steps": 0, "stopped_early": False}
    if cfg.use_tto:
        anchor_cfg = cfg.anchor if cfg.optimise_probes else _no_probes(cfg)
        base_prior = prior

        def unseen_pool(z: torch.Tensor) -> UnseenPool | None:
            box = _bounding_box({v: masks[v][:1] for v in names}, spacing, probes, cfg.mesh.bbox_margin_mm)
            return build_pool(base_prior, z, probes, [spacing[v] for v in names], [observed[v] for v in names],
                              _box_tensors(*box, device), 4 * anchor_cfg.unseen_anchor_points,
                              anchor_cfg.unseen_band_mm, anchor_cfg.unseen_plane_sigma_mm, generator)

        fit = fit_anchor(prior, z_ed, bank_ed, probes, anchor_cfg, generator, control,
                         unseen_pool if anchor_cfg.holds_back_unseen else None, init.candidates_rad)
        z_ed, prior = fit.z, fit.prior
        anchor_info = {"steps": fit.steps, "stopped_early": fit.stopped_early,
                       "final_loss": float(np.mean(fit.loss_history[-10:])),
                       "decoder_layers_finetuned": anchor_cfg.decoder_layers,
                       "long_axis_mm": init.length_mm,
                       "foreshortening_candidates_deg": {v: [math.degrees(c) for c in cands] for v, cands in
                                                         zip(names, init.candidates_rad, strict=True)},
                       "foreshortening_chosen_deg": dict(zip(names, (math.degrees(t) for t in fit.tilts_rad),
                                                             strict=True))}
    timings["anchor"] = time.perf_counter() - t0
    control.report(1.0)

    # ---------------------------------------------------------------- motion
    control = stage("motion")
    t0 = time.perf_counter()
    lo, hi = _bounding_box(masks, spacing, probes, cfg.mesh.bbox_margin_mm)
    motion_info: dict[str, Any] = {"steps": 0}
    velocity = None
    if n_frames == 1:
        z_frames = z_ed[None]
    else:
        z_init = _initial_frame_latents(z_ed, z_enc, cfg.motion.warm_start)
        if not cfg.use_tto:
            z_frames = z_init
        else:
            bank = PixelBank.build([masks[v] for v in names], [spacing[v] for v in names], device,
                                   sigma_mm=cfg.boundary_sigma_mm, observed=[observed[v] for v in names])
            seed = _surface_seed(prior, z_ed, lo, hi, cfg.surface_seed_points, generator)
            motion_cfg = cfg.motion
            if not cfg.use_motion:
                from dataclasses import replace

                motion_cfg = replace(motion_cfg, use_lstm=False, use_velocity=False)
            mfit: MotionFit = fit_motion(prior, z_init, bank, probes, seed, _box_tensors(lo, hi, device), motion_cfg,
                                         generator, control)
            z_frames, velocity = mfit.z_tilde, mfit.velocity
            motion_info = {"steps": mfit.steps, "final_loss": float(np.mean(mfit.loss_history[-10:]))}
    timings["motion"] = time.perf_counter() - t0
    control.report(1.0)

    # ---------------------------------------------------------------- mesh
    control = stage("mesh", 3)
    t0 = time.perf_counter()
    ed_mesh, mesh_warnings = extract_mesh(prior, z_frames[0], lo, hi, cfg.mesh)
    warnings.extend(mesh_warnings)
    control.report(0.3, 1, 3)
    frame_meshes: list[Mesh] | None = None
    vertices = propagate_rsa(prior, z_frames, ed_mesh.vertices, velocity, cfg.mesh.projection_iterations,
                             align=cfg.use_rsa)
    if cfg.use_rsa:
        volumes = np.array([mesh_volume_ml(ed_mesh.with_vertices(v)) for v in vertices])
    else:
        frame_meshes = per_frame_meshes(prior, z_frames, lo, hi, cfg.mesh)
        volumes = np.array([mesh_volume_ml(m) for m in frame_meshes])
        warnings.append("ablation without Radial SDF Alignment: volumes come from per-frame marching cubes; "
                        "the shared-topology sequence is the velocity-transported ED mesh")
    control.report(0.7, 2, 3)
    ed_frame, es_frame = int(np.argmax(volumes)), int(np.argmin(volumes))
    fitted_poses = probes.poses()
    view_fits = _view_fits(names, masks, spacing, observed, fitted_poses, ed_mesh, vertices, frame_meshes, ed_frame,
                           es_frame, aligned.source_frames)
    phase = _single_phase(study, cfg) if n_frames == 1 else None
    if phase == "ES":
        warnings.append("3D reconstruction (ES only; a static study declared end-systolic): the volume is the ESV; "
                        "EDV and EF are not available")
    elif phase == "ED":
        static = "; a static study: one frame per view, taken as ED" if study.is_static else ""
        warnings.append(f"3D reconstruction (ED only{static}): ESV and EF are not available")
    poor = [f.view for f in view_fits if min(f.dice_ed, f.dice_mean) < POOR_FIT_DICE]
    if poor:
        warnings.append(f"the reconstruction explains view(s) {', '.join(poor)} poorly (Dice below "
                        f"{POOR_FIT_DICE:.2f}); check the masks and the probe poses")
    timings["mesh"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    control.report(1.0, 3, 3)

    extras: dict[str, Any] = {
        "profile": cfg.profile,
        "anchored_view": names[fixed] if fixed is not None else None,
        "pose_init": cfg.pose_init,
        "anchor_steps": int(anchor_info["steps"]),
        "anchor_stopped_early": bool(anchor_info["stopped_early"]),
        "motion_steps": int(motion_info["steps"]),
        "anchor": anchor_info,
        "motion": motion_info,
        "probe_residuals": dict(zip(names, probes.residual_summary(), strict=True)),
        "initial_poses": {v: p.to_dict() for v, p in zip(names, poses0, strict=True)},
        "source_frames": {v: aligned.source_frames[v][:n_frames] for v in names},
        "latents": z_frames.detach().cpu().numpy(),
        "mesh_box_mm": [lo.tolist(), hi.tolist()],
        "single_phase": phase,
    }
    if frame_meshes is not None:
        extras["frame_meshes"] = frame_meshes
    model_info = {
        "echo4d_version": __version__,
        "method": "Echo4DIR-style test-time implicit reconstruction",
        "profile": cfg.profile,
        "seed": cfg.seed,
        "device": str(device),
        "torch_version": torch.__version__,
        "prior": prior.info,
        "recon_config": cfg.to_dict(),
    }
    return ReconResult(
        vertices=vertices,
        faces=ed_mesh.faces,
        frame_times_s=np.asarray(frame_times, dtype=np.float64),
        volumes_ml=volumes.astype(np.float64),
        ed_frame=ed_frame,
        es_frame=es_frame,
        view_fits=view_fits,
        timings_s=timings,
        model_info=model_info,
        warnings=warnings,
        extras=extras,
    )


def _single_phase(study: Study, cfg: ReconConfig) -> str:
    """``ED`` or ``ES``: what the one reconstructed frame is. A static study may declare its still
    end-systolic (``study.json`` key ``static_phase``); anything else is ED (the frame with the
    largest cavity, or the still as archives mostly store it)."""
    declared = study.meta.get("static_phase")
    if not study.is_static or cfg.ed_only or declared in (None, "ED"):
        return "ED"
    if declared not in STATIC_PHASES:
        raise InputError(f"static_phase must be one of {', '.join(STATIC_PHASES)}, got {str(declared)[:20]!r}",
                         code=ErrorCode.VALIDATION_FAILED, field="static_phase")
    return str(declared)


def _no_probes(cfg: ReconConfig) -> Any:
    from dataclasses import replace

    return replace(cfg.anchor, optimise_probes=False)


def _initial_frame_latents(z_ed: torch.Tensor, z_enc: torch.Tensor, warm_start: str) -> torch.Tensor:
    """Per-frame initial latents (T, L): frame 0 is the fitted ED latent; the others come from the
    encoder (``encoder``) or from the fitted ED latent plus the encoder's change since ED (``delta``)."""
    if warm_start == "delta":
        z = z_ed[None] + (z_enc - z_enc[:1])
    elif warm_start == "encoder":
        z = z_enc.clone()
    else:
        raise ValueError(f"unknown warm start {warm_start!r}")
    z[0] = z_ed
    return z.detach()


def _bounding_box(masks: dict[str, NDArray[np.uint8]], spacing: dict[str, tuple[float, float]], probes: ProbeParams,
                  margin_mm: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Box (lo (3,), hi (3,)) mm around every cavity pixel of every frame and view, plus a margin."""
    poses = probes.poses()
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for (v, m), pose in zip(masks.items(), poses, strict=True):
        any_frame = m.any(axis=0)
        rows, cols = np.nonzero(any_frame)
        plane = ImagePlane((int(m.shape[1]), int(m.shape[2])), spacing[v], pose)
        pts = plane.pixel_to_world(rows.astype(np.float64), cols.astype(np.float64))
        lo = np.minimum(lo, pts.min(0))
        hi = np.maximum(hi, pts.max(0))
    # The views only see chords of the cavity: make the box's cross-section square and centred.
    radius = max(float(np.max(np.abs(np.concatenate([lo[:2], hi[:2]])))), 1.0)
    lo[:2] = np.minimum(lo[:2], -radius)
    hi[:2] = np.maximum(hi[:2], radius)
    return lo - margin_mm, hi + margin_mm


def _box_tensors(lo: NDArray[np.float64], hi: NDArray[np.float64],
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The box (lo (3,), hi (3,)) mm as float32 tensors on ``device``."""
    return (torch.tensor(lo, device=device, dtype=torch.float32),
            torch.tensor(hi, device=device, dtype=torch.float32))


def _surface_seed(prior: ReconPrior, z: torch.Tensor, lo: NDArray[np.float64], hi: NDArray[np.float64], n: int,
                  generator: torch.Generator) -> torch.Tensor:
    """About ``n`` points (S, 3) mm on the zero level set of ``f(z, ·)``: uniform points near the
    surface, projected onto it."""
    device = z.device
    lo_t, hi_t = _box_tensors(lo, hi, device)
    cand = lo_t + (hi_t - lo_t) * torch.rand((16 * n, 3), generator=generator, device=device)
    with torch.no_grad():
        f = prior.sdf(z[None], cand[None])[0]
    near = cand[f.abs() < 6.0]
    if len(near) < 16:
        near = cand[torch.argsort(f.abs())[:n]]
    near = near[:n]
    return project_to_surface(prior, z[None], near[None], iterations=3)[0]


def _observed_region(shape: tuple[int, ...], spacing: tuple[float, float],
                     half_angle_deg: float | None) -> NDArray[np.bool_]:
    """Pixels (H, W) inside the apical fan (all pixels when ``half_angle_deg`` is None)."""
    h, w = int(shape[0]), int(shape[1])
    if half_angle_deg is None:
        return np.ones((h, w), dtype=bool)
    fan: NDArray[np.bool_] = sector_mask((h, w), spacing, half_angle_deg, max_depth_mm=np.inf).astype(bool)
    return fan


def _view_fits(names: list[str], masks: dict[str, NDArray[np.uint8]], spacing: dict[str, tuple[float, float]],
               observed: dict[str, NDArray[np.bool_]], poses: list[ProbePose], ed_mesh: Mesh,
               vertices: NDArray[np.float64], frame_meshes: list[Mesh] | None, ed_frame: int, es_frame: int,
               source_frames: dict[str, list[int]]) -> list[ViewFit]:
    """Dice/IoU of the reconstruction sliced in each fitted plane against the observed masks, and how far
    each fitted plane misses the reconstruction's apex (its ED vertex lowest along the long axis)."""
    from models.geometry.slicing import slice_mask

    apex = ed_mesh.vertices[int(np.argmin(ed_mesh.vertices[:, 2]))]
    fits = []
    n_frames = len(vertices)
    for v, pose in zip(names, poses, strict=True):
        obs = masks[v]
        plane = ImagePlane((int(obs.shape[1]), int(obs.shape[2])), spacing[v], pose)
        dices, ious = [], []
        for t in range(n_frames):
            mesh = frame_meshes[t] if frame_meshes is not None else ed_mesh.with_vertices(vertices[t])
            pred = slice_mask(mesh, plane).astype(bool) & observed[v]
            ref = obs[t].astype(bool) & observed[v]
            inter = float(np.logical_and(pred, ref).sum())
            total = float(pred.sum() + ref.sum())
            union = float(np.logical_or(pred, ref).sum())
            dices.append(2.0 * inter / total if total else 1.0)
            ious.append(inter / union if union else 1.0)
        src = source_frames[v]
        fits.append(ViewFit(view=v, dice_ed=dices[ed_frame], iou_ed=ious[ed_frame], dice_mean=float(np.mean(dices)),
                            iou_mean=float(np.mean(ious)), pose=pose, ed_frame=int(src[ed_frame]),
                            es_frame=int(src[es_frame]), foreshortening_mm=apex_miss_mm(pose, apex)))
    return fits
