"""What reconstruction needs from a shape prior, behind one small adapter.

:class:`ReconPrior` holds a conditional SDF decoder ``f(z (B, L), x (B, N, 3) mm) -> (B, N) mm``
(negative inside), the latent statistics used by the plausibility term, and a per-frame
encoder. :meth:`ReconPrior.from_shape_prior` adapts :class:`models.prior.model.ShapePrior`;
tests build one directly around an analytic decoder (`tests/models/recon/recon_analytic.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

FrameEncoder = Callable[[Mapping[str, NDArray[np.uint8]], Mapping[str, tuple[float, float]], torch.device], Tensor]
"""``encode(view_masks {view: (T, H, W)}, spacing {view: (row, col) mm}, device) -> z (T, L)``."""


@dataclass
class ReconPrior:
    """A decoder, its latent statistics and an encoder, as reconstruction uses them.

    ``latent_mean``/``latent_std`` (L,) describe the training latents (the plausibility
    term is the mean squared Mahalanobis distance with a diagonal covariance).
    """

    decoder: nn.Module
    latent_mean: Tensor
    latent_std: Tensor
    encode_frames: FrameEncoder
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def latent_dim(self) -> int:
        return int(self.latent_mean.shape[0])

    def sdf(self, z: Tensor, x: Tensor) -> Tensor:
        """Signed distance (B, N) mm of points ``x`` (B, N, 3) mm for latents ``z`` (B, L)."""
        out: Tensor = self.decoder(z, x)
        return out

    def to(self, device: torch.device) -> ReconPrior:
        return ReconPrior(self.decoder.to(device), self.latent_mean.to(device), self.latent_std.to(device),
                          self.encode_frames, dict(self.info))

    @classmethod
    def from_shape_prior(cls, prior: Any) -> ReconPrior:
        """Adapt a :class:`models.prior.model.ShapePrior` (``decoder``, ``encode_study_frame``,
        latent mean/std buffers)."""
        mean = _first_attr(prior, ("latent_mean", "z_mean", "latent_mu"))
        std = _first_attr(prior, ("latent_std", "z_std", "latent_sigma"))
        if mean is None or std is None:
            dim = int(prior.latent_dim)
            mean = torch.zeros(dim) if mean is None else mean
            std = torch.ones(dim) if std is None else std
        def encode(view_masks: Mapping[str, NDArray[np.uint8]], spacing: Mapping[str, tuple[float, float]],
                   device: torch.device) -> Tensor:
            if hasattr(prior, "encode_grid_frames"):
                from models.prior.grid import masks_to_grid

                grid, present = masks_to_grid(dict(view_masks), dict(spacing), prior.config)
                zb: Tensor = prior.encode_grid_frames(grid, present)
                return zb.to(device)
            n = int(next(iter(view_masks.values())).shape[0])
            zs = [prior.encode_study_frame({v: m[t] for v, m in view_masks.items()}, dict(spacing), device)
                  for t in range(n)]
            return torch.stack([z.reshape(-1) for z in zs])

        info: dict[str, Any] = {}
        for key in ("name", "sha256", "version", "checkpoint"):
            value = getattr(prior, key, None)
            if isinstance(value, str | int | float):
                info[key] = value
        config = getattr(prior, "config", None)
        if config is not None and hasattr(config, "__dataclass_fields__"):
            from dataclasses import asdict

            info["config"] = {k: v for k, v in asdict(config).items() if isinstance(v, str | int | float | bool)}
        return cls(prior.decoder, mean.detach().float().reshape(-1), std.detach().float().reshape(-1), encode,
                   info)


def _first_attr(obj: Any, names: tuple[str, ...]) -> Tensor | None:
    for n in names:
        value = getattr(obj, n, None)
        if isinstance(value, Tensor):
            return value
    return None
