"""Stage ``anchor``: test-time optimisation of the ED latent and the probe poses (see ``models.recon.anchor``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from models.errors import ErrorCode, InputError
from models.geometry.frames import ProbePose
from models.phase import lv_areas
from models.recon.anchor import PRIOR_CENTRES, AnchorConfig, fit_anchor
from models.recon.box import bounding_box, box_tensors
from models.recon.config import GAUGES, ReconConfig
from models.recon.control import StageControl
from models.recon.poses import POSE_INITS, initial_poses, mask_centroid_world
from models.recon.rendering import PixelBank, ProbeParams
from models.recon.shape_model import ReconPrior
from models.recon.stages.encode import EncodedViews
from models.recon.unseen_anchor import UnseenPool, build_pool


@dataclass(frozen=True)
class AnchoredED:
    """The fitted ED latent ``z_ed`` (L,), the prior it decodes with (its last decoder layers fine-tuned
    when the anchor does so), the probes (fitted poses), the initial poses, the gauge view's index
    (``None``: a soft gauge) and the fit's summary ``info`` (steps, final loss, foreshortening choices)."""

    prior: ReconPrior
    z_ed: Tensor
    probes: ProbeParams
    initial_poses: list[ProbePose]
    fixed: int | None
    info: dict[str, Any]


def anchor_ed(enc: EncodedViews, prior: ReconPrior, cfg: ReconConfig, device: torch.device,
              generator: torch.Generator, control: StageControl) -> AnchoredED:
    """Initial probe poses from the ED masks, then (``cfg.use_tto``) the ED fit of latent and probes (with the
    end-systolic frame beside it when ``anchor.joint_es``)."""
    if cfg.gauge not in GAUGES:
        raise InputError(f"unknown gauge {cfg.gauge!r}; expected one of {', '.join(GAUGES)}",
                         code=ErrorCode.VALIDATION_FAILED, field="gauge")
    if cfg.pose_init not in POSE_INITS:
        raise InputError(f"unknown pose initialisation {cfg.pose_init!r}; expected one of {', '.join(POSE_INITS)}",
                         code=ErrorCode.VALIDATION_FAILED, field="pose_init")
    if cfg.anchor.prior_centre not in PRIOR_CENTRES:
        raise InputError(f"unknown latent prior centre {cfg.anchor.prior_centre!r}; expected one of "
                         f"{', '.join(PRIOR_CENTRES)}", code=ErrorCode.VALIDATION_FAILED, field="anchor.prior_centre")
    names, masks, spacing, observed = enc.names, enc.masks, enc.spacing, enc.observed
    init = initial_poses(names, [masks[v][0] for v in names], [spacing[v] for v in names], cfg.pose_init,
                         multi_start=cfg.anchor.foreshortening_probe_steps > 0)
    poses0 = init.poses
    # one view has nothing to move relative to: it is the gauge whatever the setting
    fixed = 0 if len(names) == 1 else {"anchor": 0, "longest": init.longest}.get(cfg.gauge)
    anchored = [i == fixed for i in range(len(names))]
    centroids = np.stack([mask_centroid_world(masks[v][0], spacing[v], p) for v, p in zip(names, poses0, strict=True)])
    probes = ProbeParams(poses0, centroids, anchored=anchored, optimise_scale=cfg.anchor.optimise_scale,
                         bases_mm=init.pivots).to(device)
    es = _es_frame(masks, spacing) if cfg.anchor.joint_es else 0
    fit_frames = [0, es] if es > 0 else [0]
    bank = PixelBank.build([masks[v][fit_frames] for v in names], [spacing[v] for v in names], device,
                           sigma_mm=cfg.boundary_sigma_mm, observed=[observed[v] for v in names])
    z_ed = enc.z_enc[0]
    info: dict[str, Any] = {"steps": 0, "stopped_early": False}
    if cfg.use_tto:
        anchor_cfg = cfg.anchor if cfg.optimise_probes else _no_probes(cfg)
        base_prior = prior

        def unseen_pool(z: torch.Tensor) -> UnseenPool | None:
            box = bounding_box({v: masks[v][:1] for v in names}, spacing, probes, cfg.mesh.bbox_margin_mm)
            return build_pool(base_prior, z, probes, [spacing[v] for v in names], [observed[v] for v in names],
                              box_tensors(*box, device), 4 * anchor_cfg.unseen_anchor_points,
                              anchor_cfg.unseen_band_mm, anchor_cfg.unseen_plane_sigma_mm, generator)

        fit = fit_anchor(prior, enc.z_enc[fit_frames], bank, probes, anchor_cfg, generator, control,
                         unseen_pool if anchor_cfg.holds_back_unseen else None, init.candidates_rad)
        z_ed, prior = fit.z, fit.prior
        info = {"steps": fit.steps, "stopped_early": fit.stopped_early,
                "final_loss": float(np.mean(fit.loss_history[-10:])),
                "decoder_layers_finetuned": anchor_cfg.decoder_layers,
                "long_axis_mm": init.length_mm, "fitted_frames": fit_frames,
                "foreshortening_candidates_deg": {v: [math.degrees(c) for c in cands] for v, cands in
                                                  zip(names, init.candidates_rad, strict=True)},
                "foreshortening_chosen_deg": dict(zip(names, (math.degrees(t) for t in fit.tilts_rad), strict=True))}
    return AnchoredED(prior, z_ed, probes, poses0, fixed, info)


def _es_frame(masks: dict[str, NDArray[np.uint8]], spacing: dict[str, tuple[float, float]]) -> int:
    """The frame (index into the masks (T, H, W)) whose cavity area (mm²) summed over views is smallest."""
    areas = sum(lv_areas(m) * (spacing[v][0] * spacing[v][1]) for v, m in masks.items())
    return int(np.argmin(areas))


def _no_probes(cfg: ReconConfig) -> AnchorConfig:
    return replace(cfg.anchor, optimise_probes=False)
