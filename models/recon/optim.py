"""A minimal Adam (Kingma & Ba) for the few, small parameter tensors of test-time optimisation.

``torch.optim.Adam`` is numerically the same but its first construction imports
``torch._dynamo`` (3–7 s on a 2-core CPU), which a 15-second reconstruction cannot afford.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


class Adam:
    """Adam with per-group learning rates: ``groups`` is a sequence of (parameters, lr); every
    rate is multiplied by ``lr_scale`` (for schedules)."""

    def __init__(self, groups: Sequence[tuple[Sequence[Tensor], float]], betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.groups = [(list(params), float(lr)) for params, lr in groups]
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.t = 0
        self.lr_scale = 1.0
        self.m = [[torch.zeros_like(p) for p in params] for params, _ in self.groups]
        self.v = [[torch.zeros_like(p) for p in params] for params, _ in self.groups]

    def zero_grad(self) -> None:
        for params, _ in self.groups:
            for p in params:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        self.t += 1
        c1 = 1.0 - self.beta1**self.t
        c2 = 1.0 - self.beta2**self.t
        for (params, lr), ms, vs in zip(self.groups, self.m, self.v, strict=True):
            for p, m, v in zip(params, ms, vs, strict=True):
                if p.grad is None:
                    continue
                g = p.grad
                m.mul_(self.beta1).add_(g, alpha=1.0 - self.beta1)
                v.mul_(self.beta2).addcmul_(g, g, value=1.0 - self.beta2)
                denom = (v / c2).sqrt_().add_(self.eps)
                p.addcdiv_(m, denom, value=-lr * self.lr_scale / c1)
