"""Stage ``mesh``: marching cubes at ED, Radial SDF Alignment of the later frames (see
``models.recon.rsa``), volumes, ED/ES, and how well the result explains each view."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.errors import ErrorCode, InputError
from models.geometry.frames import ImagePlane, ProbePose
from models.geometry.mesh import Mesh, mesh_volume_ml
from models.geometry.slicing import slice_mask
from models.recon.config import ReconConfig
from models.recon.control import StageControl
from models.recon.poses import apex_miss_mm
from models.recon.result import ViewFit
from models.recon.rsa import extract_mesh, per_frame_meshes, propagate_rsa
from models.recon.stages.anchor import AnchoredED
from models.recon.stages.encode import EncodedViews
from models.recon.stages.motion import FrameLatents
from models.study import STATIC_PHASES, Study

POOR_FIT_DICE = 0.9
"""A view whose rendered-vs-observed Dice (at ED or averaged over frames) is below this earns a warning."""


@dataclass(frozen=True)
class MeshedSequence:
    """The ED mesh and its vertices (T, N, 3) mm in every frame (one topology), volumes (T,) mL, the
    ED/ES frames, the per-frame meshes of the no-RSA ablation (else None), each view's fit, what a
    single reconstructed frame is (``ED``/``ES``; None for a sequence) and the stage's warnings."""

    ed_mesh: Mesh
    vertices: NDArray[np.float64]
    volumes_ml: NDArray[np.float64]
    frame_meshes: list[Mesh] | None
    ed_frame: int
    es_frame: int
    view_fits: list[ViewFit]
    single_phase: str | None
    warnings: list[str]


def mesh_sequence(enc: EncodedViews, anc: AnchoredED, frames: FrameLatents, cfg: ReconConfig,
                  control: StageControl) -> MeshedSequence:
    """Mesh the fitted sequence (reports 1/3 after the ED mesh, 2/3 after the volumes)."""
    prior, z_frames, lo, hi = anc.prior, frames.z_frames, frames.box_lo, frames.box_hi
    warnings: list[str] = []
    ed_mesh, mesh_warnings = extract_mesh(prior, z_frames[0], lo, hi, cfg.mesh)
    warnings.extend(mesh_warnings)
    control.report(0.3, 1, 3)
    frame_meshes: list[Mesh] | None = None
    vertices = propagate_rsa(prior, z_frames, ed_mesh.vertices, frames.velocity, cfg.mesh, align=cfg.use_rsa)
    if cfg.use_rsa:
        volumes = np.array([mesh_volume_ml(ed_mesh.with_vertices(v)) for v in vertices])
    else:
        frame_meshes = per_frame_meshes(prior, z_frames, lo, hi, cfg.mesh)
        volumes = np.array([mesh_volume_ml(m) for m in frame_meshes])
        warnings.append("ablation without Radial SDF Alignment: volumes come from per-frame marching cubes; "
                        "the shared-topology sequence is the velocity-transported ED mesh")
    control.report(0.7, 2, 3)
    ed_frame, es_frame = int(np.argmax(volumes)), int(np.argmin(volumes))
    fitted_poses = anc.probes.poses()
    view_fits = view_fit_scores(enc.names, enc.masks, enc.spacing, enc.observed, fitted_poses, ed_mesh, vertices,
                                frame_meshes, ed_frame, es_frame, enc.source_frames)
    phase = single_phase(enc.study, cfg) if enc.n_frames == 1 else None
    if phase == "ES":
        warnings.append("3D reconstruction (ES only; a static study declared end-systolic): the volume is the ESV; "
                        "EDV and EF are not available")
    elif phase == "ED":
        static = "; a static study: one frame per view, taken as ED" if enc.study.is_static else ""
        warnings.append(f"3D reconstruction (ED only{static}): ESV and EF are not available")
    poor = [f.view for f in view_fits if min(f.dice_ed, f.dice_mean) < POOR_FIT_DICE]
    if poor:
        warnings.append(f"the reconstruction explains view(s) {', '.join(poor)} poorly (Dice below "
                        f"{POOR_FIT_DICE:.2f}); check the masks and the probe poses")
    return MeshedSequence(ed_mesh, vertices, volumes, frame_meshes, ed_frame, es_frame, view_fits, phase, warnings)


def single_phase(study: Study, cfg: ReconConfig) -> str:
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


def view_fit_scores(names: list[str], masks: dict[str, NDArray[np.uint8]], spacing: dict[str, tuple[float, float]],
                    observed: dict[str, NDArray[np.bool_]], poses: list[ProbePose], ed_mesh: Mesh,
                    vertices: NDArray[np.float64], frame_meshes: list[Mesh] | None, ed_frame: int, es_frame: int,
                    source_frames: dict[str, list[int]]) -> list[ViewFit]:
    """Dice/IoU of the reconstruction sliced in each fitted plane against the observed masks, and how far
    each fitted plane misses the reconstruction's apex (its ED vertex lowest along the long axis)."""
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
