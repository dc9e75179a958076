"""An analytic stand-in for the learned prior: ellipsoids standing on the apex.

Used by tests (and sanity checks) to exercise rendering, test-time optimisation, motion and
Radial SDF Alignment without a trained network. Latent ``z`` (B, 3): semi-axes
``a = base · exp(z)`` (mm, along x, y, z); the ellipsoid's centre is ``(0, 0, a_z)`` so its
lowest point (the "apex") is the origin, as in the canonical LV frame. The distance is
the first-order ellipsoid approximation ``k0·(k0 − 1)/k1`` with ``k0 = ‖(x − c)/a‖`` and
``k1 = ‖(x − c)/a²‖``: exact on the surface, unit gradient there, close to the true
distance within a few mm of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from models.geometry.frames import ImagePlane
from models.recon.shape_model import ReconPrior


class EllipsoidDecoder(nn.Module):
    """``forward(z (B, 3), x (B, N, 3) mm) -> (B, N)`` approximate signed distance in mm."""

    base: Tensor

    def __init__(self, base_axes_mm: Sequence[float] = (22.0, 22.0, 42.0)) -> None:
        super().__init__()
        self.register_buffer("base", torch.tensor(list(base_axes_mm), dtype=torch.float32))

    def axes(self, z: Tensor) -> Tensor:
        """Semi-axes (B, 3) mm."""
        return self.base * torch.exp(z[..., :3])

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        a = self.axes(z)[:, None, :]  # (B, 1, 3)
        centre = torch.zeros_like(a)
        centre = torch.cat([centre[..., :2], a[..., 2:3]], -1)
        d = x - centre
        k0 = (d / a).norm(dim=-1)
        k1 = (d / (a * a)).norm(dim=-1).clamp_min(1e-9)
        out: Tensor = k0 * (k0 - 1.0) / k1
        return out


def ellipsoid_volume_ml(axes_mm: Sequence[float]) -> float:
    """Closed-form volume 4/3·π·abc in mL."""
    a, b, c = axes_mm
    return float(4.0 / 3.0 * np.pi * a * b * c / 1000.0)


def ellipsoid_mask(axes_mm: Sequence[float], plane: ImagePlane) -> NDArray[np.uint8]:
    """Mask (H, W) of pixel centres inside the apex-standing ellipsoid with ``axes_mm``."""
    a = np.asarray(axes_mm, dtype=np.float64)
    pts = plane.grid_points() - np.array([0.0, 0.0, a[2]])
    out: NDArray[np.uint8] = (((pts / a) ** 2).sum(-1) <= 1.0).astype(np.uint8)
    return out


def analytic_prior(base_axes_mm: Sequence[float] = (22.0, 22.0, 42.0), init_latent: Sequence[float] = (0.0, 0.0, 0.0),
                   latent_std: float = 0.3) -> ReconPrior:
    """A :class:`ReconPrior` around :class:`EllipsoidDecoder`; its "encoder" returns ``init_latent``
    for every frame (the optimisation has to do the rest)."""
    init = torch.tensor(list(init_latent), dtype=torch.float32)

    def encode(view_masks: Mapping[str, NDArray[np.uint8]], spacing: Mapping[str, tuple[float, float]],
               device: torch.device) -> Tensor:
        n = int(next(iter(view_masks.values())).shape[0])
        return init.to(device)[None].expand(n, -1).clone()

    return ReconPrior(
        decoder=EllipsoidDecoder(base_axes_mm),
        latent_mean=torch.zeros(3),
        latent_std=torch.full((3,), latent_std),
        encode_frames=encode,
        info={"name": "analytic-ellipsoid"},
    )
