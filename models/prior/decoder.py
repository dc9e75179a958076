"""The conditional SDF decoder f(z, x): a DeepSDF-style MLP with Fourier features and one skip.

``f`` is smooth (Softplus with β = 100 or SiLU by default) so that ∇f and ∇²f exist for the
Radial SDF Alignment and the eikonal term.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from models.prior.config import PriorConfig


def make_activation(name: str) -> nn.Module:
    if name == "softplus":
        return nn.Softplus(beta=100.0)
    if name == "silu":
        return nn.SiLU()
    if name == "relu":
        return nn.ReLU()
    raise ValueError(f"unknown activation {name!r}")


class SDFDecoder(nn.Module):
    """``forward(z (B, L), x (B, N, 3) mm canonical) -> (B, N)`` signed distance in mm, negative inside.

    The first layer and the skip layer are split into a latent part (computed once per shape)
    and a point part, which is the same function as concatenating ``[z, γ(x)]`` but cheaper.
    """

    fourier_freqs: Tensor
    center_mm: Tensor

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        width, depth = config.decoder_width, config.decoder_depth
        freqs = torch.randn(3, config.fourier_features, generator=torch.Generator().manual_seed(config.fourier_seed))
        self.register_buffer("fourier_freqs", freqs * config.fourier_scale)
        self.register_buffer("center_mm", torch.tensor(config.sdf_center_mm, dtype=torch.float32))
        self.point_dim = 3 + 2 * config.fourier_features
        self.latent_in = nn.Linear(config.latent_dim, width)
        self.point_in = nn.Linear(self.point_dim, width, bias=False)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.skip = config.decoder_skip_layer
        if self.skip > 0:
            self.skip_latent = nn.Linear(config.latent_dim, width, bias=False)
            self.skip_point = nn.Linear(self.point_dim, width, bias=False)
        self.act = make_activation(config.decoder_activation)
        self.out = nn.Linear(width, 1)
        self._init_output()

    def _init_output(self) -> None:
        # Small output weights: the network starts near a constant and the loss, not the
        # initialisation, shapes the surface.
        nn.init.normal_(self.out.weight, std=1e-3 / math.sqrt(self.config.decoder_width))
        nn.init.zeros_(self.out.bias)

    def point_features(self, x: Tensor) -> Tensor:
        """Normalised coordinates and Fourier features: x (..., 3) mm → (..., 3 + 2F)."""
        xn = (x - self.center_mm) / self.config.sdf_scale_mm
        if self.config.fourier_features == 0:
            return xn
        proj = 2.0 * math.pi * xn @ self.fourier_freqs
        return torch.cat([xn, torch.sin(proj), torch.cos(proj)], dim=-1)

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        """z (B, L), x (B, N, 3) mm → signed distance (B, N) mm."""
        if z.dim() != 2 or x.dim() != 3 or x.shape[-1] != 3 or z.shape[0] != x.shape[0]:
            raise ValueError(f"SDFDecoder expects z (B, L) and x (B, N, 3), got {tuple(z.shape)}, {tuple(x.shape)}")
        feats = self.point_features(x)
        h = self.act(self.latent_in(z)[:, None, :] + self.point_in(feats))
        for i, layer in enumerate(self.hidden, start=1):
            pre = layer(h)
            if i == self.skip:
                pre = (pre + self.skip_latent(z)[:, None, :] + self.skip_point(feats)) / math.sqrt(2.0)
            h = self.act(pre)
        out: Tensor = self.out(h).squeeze(-1) * self.config.sdf_scale_mm
        return out
