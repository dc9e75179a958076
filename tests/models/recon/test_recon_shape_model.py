"""The recon ↔ prior seam: ReconPrior.from_shape_prior reads a ShapePrior's decoder, statistics, encoder, provenance."""

from __future__ import annotations

import numpy as np
import torch

from models.geometry.frames import nominal_plane
from models.prior.config import TrainConfig
from models.prior.model import ShapePrior
from models.prior.standin import Ellipsoid, ellipsoid_view_mask
from models.recon.shape_model import ReconPrior

SPACING = (0.7, 0.7)


def _prior() -> ShapePrior:
    torch.manual_seed(0)
    prior = ShapePrior(TrainConfig.profile("smoke").prior).eval()
    prior.latent_mean.copy_(torch.linspace(-1.0, 1.0, prior.latent_dim))
    prior.latent_std.copy_(torch.linspace(0.5, 2.0, prior.latent_dim))
    prior.name, prior.checkpoint, prior.sha256, prior.version = "p", "p.pt", "ab" * 32, "1.2.3"
    return prior


def _cine(view: str) -> np.ndarray:
    plane = nominal_plane(view, (160, 128), SPACING)
    return np.stack([ellipsoid_view_mask(Ellipsoid(20.0 * s, 18.0 * s, 40.0), plane) for s in (1.0, 0.85, 0.7)])


def test_from_shape_prior_takes_decoder_statistics_and_provenance() -> None:
    prior = _prior()
    adapted = ReconPrior.from_shape_prior(prior)
    assert adapted.decoder is prior.decoder
    torch.testing.assert_close(adapted.latent_mean, prior.latent_mean)
    torch.testing.assert_close(adapted.latent_std, prior.latent_std)
    assert {k: adapted.info[k] for k in ("name", "sha256", "version", "checkpoint")} == {
        "name": "p", "sha256": "ab" * 32, "version": "1.2.3", "checkpoint": "p.pt"}
    assert adapted.info["config"]["latent_dim"] == prior.latent_dim
    z, x = torch.zeros(1, prior.latent_dim), torch.zeros(1, 5, 3)
    torch.testing.assert_close(adapted.sdf(z, x), prior.sdf(z, x))


def test_its_cine_encoder_matches_the_prior_frame_by_frame() -> None:
    prior = _prior()
    masks = {v: _cine(v) for v in ("A4C", "A2C")}
    spacing = {v: SPACING for v in masks}
    z = ReconPrior.from_shape_prior(prior).encode_frames(masks, spacing, torch.device("cpu"))
    assert z.shape == (3, prior.latent_dim)
    for t in range(3):
        torch.testing.assert_close(z[t], prior.encode_study_frame({v: m[t] for v, m in masks.items()}, spacing, "cpu"))
    assert not torch.allclose(z[0], z[2])  # the frames differ, and so do their codes


def test_adapt_keeps_a_recon_prior_and_adapts_a_shape_prior() -> None:
    prior = _prior()
    adapted = ReconPrior.adapt(prior)
    assert isinstance(adapted, ReconPrior) and ReconPrior.adapt(adapted) is adapted
