"""The decoder can represent one LV-sized shape to a fraction of a millimetre (overfit test)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.prior.config import PriorConfig
from models.prior.data import EllipsoidSource
from models.prior.decoder import SDFDecoder
from models.prior.losses import sdf_loss
from models.prior.standin import Ellipsoid


@pytest.mark.slow
def test_decoder_overfits_one_ellipsoid_below_a_third_of_a_millimetre() -> None:
    torch.manual_seed(0)
    cfg = PriorConfig(latent_dim=8, decoder_width=64, decoder_depth=3, decoder_skip_layer=0, fourier_features=0)
    decoder = SDFDecoder(cfg)
    source, shape = EllipsoidSource(), Ellipsoid(22.0, 19.0, 42.0)
    rng = np.random.default_rng(0)
    x_train, s_train = (torch.from_numpy(a)[None] for a in source.sdf_samples(shape, rng, 2048, 0.8))
    x_test, s_test = (torch.from_numpy(a)[None] for a in source.sdf_samples(shape, rng, 2000, 1.0))
    z = torch.zeros(1, cfg.latent_dim)
    steps = 300
    opt = torch.optim.Adam(decoder.parameters(), lr=5e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    with torch.no_grad():
        start = float((decoder(z, x_test) - s_test).abs().mean())
    for _ in range(steps):
        loss = sdf_loss(decoder(z, x_train), s_train, cfg.clamp_mm)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        err = (decoder(z, x_test) - s_test).abs()
    near = s_test.abs() < 2.0  # within 2 mm of the surface
    assert start > 1.0  # it did not start there
    assert float(err.mean()) < 0.3
    assert float(err[near].mean()) < 0.3
