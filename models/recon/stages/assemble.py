"""Stage ``assemble``: the stages' outputs as one :class:`~models.recon.result.ReconResult`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models import __version__
from models.recon.config import ReconConfig
from models.recon.result import ReconResult
from models.recon.stages.anchor import AnchoredED
from models.recon.stages.encode import EncodedViews
from models.recon.stages.mesh import MeshedSequence
from models.recon.stages.motion import FrameLatents


def assemble(enc: EncodedViews, anc: AnchoredED, frames: FrameLatents, meshed: MeshedSequence, cfg: ReconConfig,
             device: torch.device, timings: dict[str, float], warnings: list[str]) -> ReconResult:
    """The result with its ``extras`` (poses, fit summaries, latents, box) and ``model_info`` (provenance)."""
    names, n_frames = enc.names, enc.n_frames
    extras: dict[str, Any] = {
        "profile": cfg.profile,
        "anchored_view": names[anc.fixed] if anc.fixed is not None else None,
        "pose_init": cfg.pose_init,
        "anchor_steps": int(anc.info["steps"]),
        "anchor_stopped_early": bool(anc.info["stopped_early"]),
        "motion_steps": int(frames.info["steps"]),
        "anchor": anc.info,
        "motion": frames.info,
        "probe_residuals": dict(zip(names, anc.probes.residual_summary(), strict=True)),
        "initial_poses": {v: p.to_dict() for v, p in zip(names, anc.initial_poses, strict=True)},
        "source_frames": {v: enc.source_frames[v][:n_frames] for v in names},
        "latents": frames.z_frames.detach().cpu().numpy(),
        "mesh_box_mm": [frames.box_lo.tolist(), frames.box_hi.tolist()],
        "single_phase": meshed.single_phase,
    }
    if meshed.frame_meshes is not None:
        extras["frame_meshes"] = meshed.frame_meshes
    model_info = {
        "echo4d_version": __version__,
        "method": "Echo4DIR-style test-time implicit reconstruction",
        "profile": cfg.profile,
        "seed": cfg.seed,
        "device": str(device),
        "torch_version": torch.__version__,
        "prior": anc.prior.info,
        "recon_config": cfg.to_dict(),
    }
    return ReconResult(
        vertices=meshed.vertices,
        faces=meshed.ed_mesh.faces,
        frame_times_s=np.asarray(enc.frame_times_s, dtype=np.float64),
        volumes_ml=meshed.volumes_ml.astype(np.float64),
        ed_frame=meshed.ed_frame,
        es_frame=meshed.es_frame,
        view_fits=meshed.view_fits,
        timings_s=timings,
        model_info=model_info,
        warnings=warnings,
        extras=extras,
    )
