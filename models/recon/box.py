"""The reconstruction box: where the decoder is sampled, marched and seeded (mm, canonical frame)."""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray

from models.geometry.frames import ImagePlane
from models.recon.rendering import ProbeParams


def bounding_box(masks: dict[str, NDArray[np.uint8]], spacing: dict[str, tuple[float, float]], probes: ProbeParams,
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


def box_tensors(lo: NDArray[np.float64], hi: NDArray[np.float64],
                device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The box (lo (3,), hi (3,)) mm as float32 tensors on ``device``."""
    return (torch.tensor(lo, device=device, dtype=torch.float32),
            torch.tensor(hi, device=device, dtype=torch.float32))
