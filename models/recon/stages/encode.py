"""Stage ``encode``: the views on one phase axis (ED = frame 0) and every frame's masks encoded."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from models.errors import ErrorCode, InputError
from models.geometry.sector import sector_mask
from models.recon.config import ReconConfig
from models.recon.shape_model import ReconPrior
from models.recon.temporal import align_views
from models.study import Study, check_static_or_cine


@dataclass(frozen=True)
class EncodedViews:
    """The study as reconstructed: its views (``names``, in view order), their masks (T, H, W) on the
    common phase axis, pixel spacing (row, col) mm, observed region (H, W) (the apical fan), frame
    times (T,) s from ED, the source frame of each aligned frame, and the encoder's latents ``z_enc`` (T, L)."""

    study: Study
    names: list[str]
    masks: dict[str, NDArray[np.uint8]]
    spacing: dict[str, tuple[float, float]]
    observed: dict[str, NDArray[np.bool_]]
    n_frames: int
    frame_times_s: NDArray[np.float64]
    source_frames: dict[str, list[int]]
    z_enc: Tensor
    warnings: list[str]


def encode_views(study: Study, prior: ReconPrior, cfg: ReconConfig, device: torch.device) -> EncodedViews:
    """Restrict ``study`` to ``cfg.views``, align its views in phase (``cfg.n_frames``; ED only when
    ``cfg.ed_only``) and encode every frame. Raises :class:`InputError` for unusable input."""
    if cfg.views is not None:
        study = study.subset(list(cfg.views))
    if not study.view_names:
        raise InputError("the study has no view to reconstruct from", code=ErrorCode.MISSING_VIEW, field="views")
    check_static_or_cine(study.views)
    aligned = align_views(study, None if study.is_static else cfg.n_frames)
    names = study.view_names
    masks = {v: aligned.masks[v] for v in names}
    if cfg.ed_only:
        masks = {v: m[:1] for v, m in masks.items()}
    n_frames = int(next(iter(masks.values())).shape[0])
    frame_times = aligned.frame_times_s[:n_frames] - aligned.frame_times_s[0]
    spacing = {v: study.views[v].pixel_spacing_mm for v in names}
    observed = {v: observed_region(masks[v].shape[1:], spacing[v], cfg.sector_half_angle_deg) for v in names}
    z_enc = prior.encode_frames(masks, spacing, device).to(device).float()
    return EncodedViews(study, names, masks, spacing, observed, n_frames, frame_times, aligned.source_frames, z_enc,
                        list(aligned.warnings))


def observed_region(shape: tuple[int, ...], spacing: tuple[float, float],
                    half_angle_deg: float | None) -> NDArray[np.bool_]:
    """Pixels (H, W) inside the apical fan (all pixels when ``half_angle_deg`` is None)."""
    h, w = int(shape[0]), int(shape[1])
    if half_angle_deg is None:
        return np.ones((h, w), dtype=bool)
    fan: NDArray[np.bool_] = sector_mask((h, w), spacing, half_angle_deg, max_depth_mm=np.inf).astype(bool)
    return fan
