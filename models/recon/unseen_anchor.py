"""Keep decoder fine-tuning to what the masks observe (a function-space anchor).

Fine-tuning the decoder's last layers at test time (:mod:`models.recon.anchor`) lets the fit
explain details the latent cannot, but the rendering loss only sees points in the image
planes, inside the fans. Away from them the fine-tuned SDF is free to drift: a dilated
ventricle cut by the fan edges then grows where no probe looks (measured on the cohort's
largest cases: EDV +50 mL with fine-tuning, ±15 mL without).

The anchor penalises ``(f_ft(z, y) − f_base(z, y))²`` at points ``y`` near the surface that
no view observes, with ``f_base`` the shared prior's decoder and ``z`` the current latent
(detached: only the decoder is held back). A point's weight is
``Π_v (1 − in_fan_v(y) · exp(−d_v(y)² / 2σ²))`` with ``d_v`` its distance (mm) to view v's
plane, so points in an observed plane cost nothing and points far from every plane (or
outside every fan) cost fully; points are drawn in proportion to that weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from models.recon.rendering import ProbeParams
from models.recon.shape_model import ReconPrior


@dataclass(frozen=True)
class UnseenPool:
    """Candidate points (P, 3) mm near the initial surface, their sampling probabilities (P,)
    (unobserved weight, normalised) and the base prior whose SDF they are held to."""

    points: Tensor
    probs: Tensor
    base: ReconPrior

    def penalty(self, prior: ReconPrior, z: Tensor, n: int, generator: torch.Generator) -> Tensor:
        """Mean squared SDF change (mm², scalar) of ``prior`` vs the base at ``n`` drawn points.

        ``z`` (L,) the current latent (detached here).
        """
        idx = torch.multinomial(self.probs, n, replacement=True, generator=generator)
        y = self.points[idx][None]
        zd = z.detach()[None]
        with torch.no_grad():
            ref = self.base.sdf(zd, y)
        out: Tensor = ((prior.sdf(zd, y) - ref) ** 2).mean()
        return out


def observation_weight(points: Tensor, probes: ProbeParams, spacing: Sequence[tuple[float, float]],
                       observed: Sequence[NDArray[np.bool_]], sigma_mm: float) -> Tensor:
    """Unobserved weight (P,) in [0, 1] of canonical points (P, 3) mm under the current probes.

    ``observed[v]`` (H_v, W_v) marks the pixels view v images (its fan); ``spacing[v]`` is
    (row, col) mm.
    """
    with torch.no_grad():
        rot, trans, scale = probes.transforms()
        weight = torch.ones(points.shape[0], device=points.device)
        for v, (seen, sp) in enumerate(zip(observed, spacing, strict=True)):
            local = (points - trans[v]) @ rot[v] / scale[v]  # (P, 3): lateral, depth, normal (mm)
            row = torch.round(local[:, 1] / sp[0]).long()
            col = torch.round(local[:, 0] / sp[1]).long()
            h, w = seen.shape
            inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
            fan = torch.as_tensor(seen, device=points.device)
            in_fan = torch.zeros_like(inside)
            in_fan[inside] = fan[row[inside], col[inside]]
            near_plane = torch.exp(-local[:, 2] ** 2 / (2.0 * sigma_mm**2))
            weight = weight * (1.0 - in_fan.float() * near_plane)
    return weight


def build_pool(prior: ReconPrior, z: Tensor, probes: ProbeParams, spacing: Sequence[tuple[float, float]],
               observed: Sequence[NDArray[np.bool_]], box: tuple[Tensor, Tensor], n: int, band_mm: float,
               sigma_mm: float, generator: torch.Generator) -> UnseenPool | None:
    """Up to ``n`` points within ``band_mm`` of the surface ``f(z, ·) = 0`` inside ``box``
    (lo (3,), hi (3,) mm), weighted by :func:`observation_weight`. None when no such point
    is unobserved (e.g. every point lies in some view's plane)."""
    lo, hi = box
    cand = lo + (hi - lo) * torch.rand((16 * n, 3), generator=generator, device=z.device)
    with torch.no_grad():
        f = prior.sdf(z.detach()[None], cand[None])[0]
    near = cand[f.abs() < band_mm][:n]
    if len(near) == 0:
        return None
    weight = observation_weight(near, probes, spacing, observed, sigma_mm)
    total = float(weight.sum())
    if total <= 1e-6:
        return None
    return UnseenPool(near, weight / total, prior)
