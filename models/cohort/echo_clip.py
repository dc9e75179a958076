"""A physics-simulated B-mode *cine* of an LV mask clip: one scanner and one scene for the whole clip.

:func:`models.segment.data.render_pair` draws a new acquisition and a new scene for every frame
(training pairs); a clip keeps both (gain, depth, dropout, the chambers and tissue texture around the
LV) and only the speckle changes from frame to frame, as on a real cart. The label is cut to the
rendered fan, as in training.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from models.cohort.echo_physics import render_bmode, sample_acquisition
from models.cohort.echo_scene import echogenicity_map
from models.geometry.sector import sector_mask


def physics_bmode_clip(masks: NDArray[np.uint8], view: str, spacing_mm: tuple[float, float],
                       rng: np.random.Generator) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """LV masks (T, H, W) {0, 1} → (B-mode (T, H, W) uint8, masks cut to the fan (T, H, W) uint8)."""
    acq = sample_acquisition(rng)
    scene_seed = int(rng.integers(2**31))
    with_chambers = bool(rng.uniform() < 0.9)
    frames = [render_bmode(echogenicity_map(m, spacing_mm, np.random.default_rng(scene_seed), view, with_chambers),
                           spacing_mm, acq, rng) for m in masks]
    fan = sector_mask(masks.shape[1:], spacing_mm, acq.half_angle_deg).astype(np.uint8)
    return np.stack(frames), (masks * fan[None]).astype(np.uint8)
