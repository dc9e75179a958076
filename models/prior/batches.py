"""Training mini-batches drawn from a :class:`~models.prior.pool.Pool`: points, SDF, masks, view dropout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from models.prior.pool import Pool

N_VIEWS = 3
STRICT_SUBSETS: tuple[tuple[bool, bool, bool], ...] = (
    (True, True, False), (True, False, True), (False, True, True),
    (True, False, False), (False, True, False), (False, False, True),
)
"""The non-empty strict subsets of (A4C, A2C, A3C) as presence flags."""


@dataclass(frozen=True)
class Batch:
    """index (B,) pool rows; points (B, N, 3) mm; sdf (B, N) mm; masks (B, V, H, W) in [0, 1]; present (B, V)."""

    index: Tensor
    points: Tensor
    sdf: Tensor
    masks: Tensor
    present: Tensor


def draw_batch(pool: Pool, rng: np.random.Generator, batch_shapes: int, points_per_shape: int,
               view_dropout: float, device: torch.device) -> Batch:
    """Random shapes, a random subset of each one's SDF samples, an independently chosen rendition per
    view, and with probability ``view_dropout`` a uniformly chosen non-empty strict subset of views."""
    s = pool.n_shapes
    idx = rng.choice(s, size=batch_shapes, replace=s < batch_shapes)
    p = pool.points.shape[1]
    cols = np.stack([rng.choice(p, size=points_per_shape, replace=False) for _ in range(batch_shapes)])
    rows = idx[:, None]
    k = pool.masks.shape[1]
    variant = rng.integers(0, k, size=(batch_shapes, N_VIEWS))
    masks: NDArray[np.uint8] = pool.masks[idx[:, None], variant, np.arange(N_VIEWS)[None, :]]  # (B, V, H, W)
    present = np.ones((batch_shapes, N_VIEWS), dtype=bool)
    drop = rng.random(batch_shapes) < view_dropout
    subsets = np.asarray(STRICT_SUBSETS)[rng.integers(0, len(STRICT_SUBSETS), size=batch_shapes)]
    present[drop] = subsets[drop]
    return Batch(
        index=torch.from_numpy(idx).to(device),
        points=torch.from_numpy(pool.points[rows, cols]).to(device),
        sdf=torch.from_numpy(pool.sdf[rows, cols]).to(device),
        masks=torch.from_numpy(masks.astype(np.float32) / 255.0).to(device),
        present=torch.from_numpy(present).to(device),
    )


def pool_masks(pool: Pool, rows: NDArray[np.int64], present: tuple[bool, bool, bool], variant: int,
               device: torch.device) -> tuple[Tensor, Tensor]:
    """Masks (B, V, H, W) of rendition ``variant`` for pool rows, with a fixed presence pattern (B, V)."""
    m = pool.masks[rows, variant].astype(np.float32) / 255.0
    pres = np.broadcast_to(np.asarray(present, dtype=bool), (len(rows), N_VIEWS)).copy()
    return torch.from_numpy(m).to(device), torch.from_numpy(pres).to(device)
