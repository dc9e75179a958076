"""The shape prior's training losses (reference Eq. 6): clamped SDF L1 and the eikonal term."""

from __future__ import annotations

import torch
from torch import Tensor

from models.prior.data import SDF_BOUNDS_MM
from models.prior.model import ShapePrior


def sdf_loss(pred: Tensor, target: Tensor, clamp_mm: float) -> Tensor:
    """Mean L1 between SDFs clamped to ±clamp_mm, in mm."""
    return (pred.clamp(-clamp_mm, clamp_mm) - target.clamp(-clamp_mm, clamp_mm)).abs().mean()


def eikonal_loss(prior: ShapePrior, z: Tensor, n_points: int, generator: torch.Generator) -> Tensor:
    """Mean (‖∇ₓf‖ − 1)² at uniform points of the SDF box (needs a double backward)."""
    lo = torch.tensor(SDF_BOUNDS_MM[0], device=z.device)
    hi = torch.tensor(SDF_BOUNDS_MM[1], device=z.device)
    u = torch.rand(z.shape[0], n_points, 3, generator=generator).to(z.device)
    x = (lo + u * (hi - lo)).requires_grad_(True)
    f = prior.sdf(z, x)
    (grad,) = torch.autograd.grad(f.sum(), x, create_graph=True)
    out: Tensor = ((grad.norm(dim=-1) - 1.0) ** 2).mean()
    return out
