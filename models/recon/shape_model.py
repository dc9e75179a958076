"""What reconstruction needs from a shape prior, behind one small adapter.

:class:`ReconPrior` holds a conditional SDF decoder ``f(z (B, L), x (B, N, 3) mm) -> (B, N) mm``
(negative inside), the latent statistics used by the plausibility term, and a per-frame
encoder. :meth:`ReconPrior.from_shape_prior` adapts :class:`models.prior.model.ShapePrior` (typed on
it, imported for type checking only: the prior's grid and network code stay behind its methods);
tests build one directly around an analytic decoder (`tests/models/recon/recon_analytic.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

if TYPE_CHECKING:  # the adapter only reads a ShapePrior; recon does not load the prior's network code
    from models.prior.model import ShapePrior

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
    def from_shape_prior(cls, prior: ShapePrior) -> ReconPrior:
        """Adapt a :class:`models.prior.model.ShapePrior`: its decoder, its latent mean/std buffers,
        its cine encoder (:meth:`~models.prior.model.ShapePrior.encode_cine`) and its provenance."""

        def encode(view_masks: Mapping[str, NDArray[np.uint8]], spacing: Mapping[str, tuple[float, float]],
                   device: torch.device) -> Tensor:
            return prior.encode_cine(view_masks, spacing).to(device)

        info: dict[str, Any] = {"name": prior.name, "sha256": prior.sha256, "version": prior.version,
                                "checkpoint": prior.checkpoint}
        info["config"] = {k: v for k, v in asdict(prior.config).items() if isinstance(v, str | int | float | bool)}
        return cls(prior.decoder, prior.latent_mean.detach().float().reshape(-1),
                   prior.latent_std.detach().float().reshape(-1), encode, info)

    @classmethod
    def adapt(cls, prior: ShapePrior | ReconPrior) -> ReconPrior:
        """``prior`` as a :class:`ReconPrior` (a :class:`ReconPrior` is returned as it is)."""
        return prior if isinstance(prior, ReconPrior) else cls.from_shape_prior(prior)
