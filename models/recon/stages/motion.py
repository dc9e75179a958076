"""Stage ``motion``: per-frame latents refined (BiLSTM + velocity field, and the probes where
``motion.probe_steps`` > 0 under the anchor stage's probe prior; see ``models.recon.motion``) and the box
the sequence lives in."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from models.recon.anchor import probe_penalty
from models.recon.box import bounding_box, box_tensors
from models.recon.config import ReconConfig
from models.recon.control import StageControl
from models.recon.motion import MotionFit, VelocityField, fit_motion, project_to_surface
from models.recon.rendering import PixelBank, ProbeParams
from models.recon.shape_model import ReconPrior
from models.recon.stages.anchor import AnchoredED
from models.recon.stages.encode import EncodedViews


@dataclass(frozen=True)
class FrameLatents:
    """Latents ``z_frames`` (T, L) (frame 0 = the fitted ED latent), the velocity field (None when the
    motion model is off or not fitted), the box (lo (3,), hi (3,)) mm around every frame's cavity and
    the fit's summary ``info``."""

    z_frames: Tensor
    velocity: VelocityField | None
    box_lo: NDArray[np.float64]
    box_hi: NDArray[np.float64]
    info: dict[str, Any]


def fit_frames(enc: EncodedViews, anc: AnchoredED, cfg: ReconConfig, device: torch.device,
               generator: torch.Generator, control: StageControl) -> FrameLatents:
    """One latent per frame: the encoder's warm start, refined (``cfg.use_tto``) by the motion fit."""
    names, masks, spacing = enc.names, enc.masks, enc.spacing
    prior, z_ed = anc.prior, anc.z_ed
    lo, hi = bounding_box(masks, spacing, anc.probes, cfg.mesh.bbox_margin_mm)
    info: dict[str, Any] = {"steps": 0}
    velocity = None
    if enc.n_frames == 1:
        z_frames = z_ed[None]
    else:
        z_init = initial_frame_latents(z_ed, enc.z_enc, cfg.motion.warm_start)
        if not cfg.use_tto:
            z_frames = z_init
        else:
            bank = PixelBank.build([masks[v] for v in names], [spacing[v] for v in names], device,
                                   sigma_mm=cfg.boundary_sigma_mm, observed=[enc.observed[v] for v in names])
            seed = surface_seed(prior, z_ed, lo, hi, cfg.surface_seed_points, generator)
            motion_cfg = cfg.motion
            if not cfg.use_motion:
                motion_cfg = replace(motion_cfg, use_lstm=False, use_velocity=False)
            anchor_cfg = cfg.anchor

            def probe_prior(probes: ProbeParams) -> Tensor:
                return anchor_cfg.probe_prior_weight * probe_penalty(probes, anchor_cfg)

            if not cfg.optimise_probes:
                motion_cfg = replace(motion_cfg, probe_steps=0)
            mfit: MotionFit = fit_motion(prior, z_init, bank, anc.probes, seed, box_tensors(lo, hi, device),
                                         motion_cfg, generator, control, probe_prior)
            z_frames, velocity = mfit.z_tilde, mfit.velocity
            info = {"steps": mfit.steps, "final_loss": float(np.mean(mfit.loss_history[-10:]))}
    return FrameLatents(z_frames, velocity, lo, hi, info)


def initial_frame_latents(z_ed: torch.Tensor, z_enc: torch.Tensor, warm_start: str) -> torch.Tensor:
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


def surface_seed(prior: ReconPrior, z: torch.Tensor, lo: NDArray[np.float64], hi: NDArray[np.float64], n: int,
                 generator: torch.Generator) -> torch.Tensor:
    """About ``n`` points (S, 3) mm on the zero level set of ``f(z, ·)``: uniform points near the
    surface, projected onto it."""
    device = z.device
    lo_t, hi_t = box_tensors(lo, hi, device)
    cand = lo_t + (hi_t - lo_t) * torch.rand((16 * n, 3), generator=generator, device=device)
    with torch.no_grad():
        f = prior.sdf(z[None], cand[None])[0]
    near = cand[f.abs() < 6.0]
    if len(near) < 16:
        near = cand[torch.argsort(f.abs())[:n]]
    near = near[:n]
    return project_to_surface(prior, z[None], near[None], iterations=3)[0]
