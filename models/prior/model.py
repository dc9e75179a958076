"""The shape prior: Epipolar Mask Encoder + conditional SDF decoder + latent statistics."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from models.prior.config import PriorConfig
from models.prior.decoder import SDFDecoder
from models.prior.encoder import EpipolarMaskEncoder
from models.prior.grid import masks_to_grid


class ShapePrior(nn.Module):
    """``z = encode(masks, present)``; ``f = sdf(z, x)`` in mm (negative inside the LV cavity).

    ``latent_mean`` / ``latent_std`` (L,) are the statistics of the encoder's codes on the
    training shapes: a test-time prior term ``‖(z − mean) / std‖²`` keeps optimised codes
    in the region the decoder was trained on.
    """

    latent_mean: Tensor
    latent_std: Tensor

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        # Provenance, filled by ``checkpoint.load_prior`` (empty for an untrained or in-memory prior).
        self.name = "shape_prior"
        self.checkpoint = ""
        self.sha256 = ""
        self.version = ""
        self.decoder = SDFDecoder(config)
        self.encoder = EpipolarMaskEncoder(config)
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_std", torch.ones(config.latent_dim))

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    def encode(self, masks: Tensor, present: Tensor) -> Tensor:
        """masks (B, V, H, W) in [0, 1] on the network grid, present (B, V) bool → z (B, L)."""
        z: Tensor = self.encoder(masks, present)
        return z

    def sdf(self, z: Tensor, x: Tensor) -> Tensor:
        """z (B, L), x (B, N, 3) mm canonical → signed distance (B, N) mm."""
        out: Tensor = self.decoder(z, x)
        return out

    def sdf_and_gradient(self, z: Tensor, x: Tensor, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """Signed distance (B, N) and its spatial gradient ∇ₓf (B, N, 3) (unit length for a true SDF)."""
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            f = self.decoder(z, xg)
            (grad,) = torch.autograd.grad(f.sum(), xg, create_graph=create_graph)
        return f, grad

    def encode_study_frame(self, view_masks: Mapping[str, NDArray[np.generic]],
                           spacing: Mapping[str, tuple[float, float]], device: torch.device | str) -> Tensor:
        """One frame's masks ``{view: (H, W)}`` with spacing ``{view: (row_mm, col_mm)}`` → z (L,)."""
        grid, present = masks_to_grid(view_masks, spacing, self.config)
        with torch.no_grad():
            z = self.encode(grid[None].to(device), present[None].to(device))
        return z[0]

    def encode_cine(self, view_masks: Mapping[str, NDArray[np.generic]],
                    spacing: Mapping[str, tuple[float, float]]) -> Tensor:
        """A cine's masks ``{view: (T, H, W)}`` with spacing ``{view: (row_mm, col_mm)}`` → z (T, L) on
        :attr:`device` (no gradient)."""
        grid, present = masks_to_grid(view_masks, spacing, self.config)
        return self.encode_grid_frames(grid, present)

    def encode_grid_frames(self, grid: Tensor, present: Tensor) -> Tensor:
        """Cine on the grid (T, V, H, W), present (V,) → z (T, L) (no gradient)."""
        with torch.no_grad():
            return self.encode(grid.to(self.device), present[None].expand(grid.shape[0], -1).to(self.device))
