"""Tensor shapes and masking behaviour of the decoder, the Epipolar Mask Encoder and ShapePrior."""

from __future__ import annotations

import pytest
import torch

from models.prior.config import PriorConfig, TrainConfig
from models.prior.data import ALL_SUBSETS
from models.prior.decoder import SDFDecoder
from models.prior.encoder import EpipolarCrossAttention, EpipolarMaskEncoder, anchor_index
from models.prior.model import ShapePrior

VIEWS = ("A4C", "A2C", "A3C")
TINY = TrainConfig.profile("smoke").prior


def presence(subset: tuple[str, ...]) -> torch.Tensor:
    return torch.tensor([v in subset for v in VIEWS])


@pytest.mark.parametrize("use_eca", [True, False])
@pytest.mark.parametrize("subset", ALL_SUBSETS, ids=["+".join(s) for s in ALL_SUBSETS])
def test_encoder_output_shape_for_every_view_subset(subset: tuple[str, ...], use_eca: bool) -> None:
    torch.manual_seed(0)
    enc = EpipolarMaskEncoder(TINY.replace(use_eca=use_eca))
    h, w = TINY.grid_shape
    masks = torch.rand(2, 3, h, w)
    present = presence(subset)[None].expand(2, 3)
    z = enc(masks, present)
    assert z.shape == (2, TINY.latent_dim)
    assert torch.isfinite(z).all()


@pytest.mark.parametrize("use_eca", [True, False])
def test_absent_views_do_not_influence_the_code(use_eca: bool) -> None:
    torch.manual_seed(0)
    enc = EpipolarMaskEncoder(TINY.replace(use_eca=use_eca)).eval()
    h, w = TINY.grid_shape
    masks = torch.rand(1, 3, h, w)
    present = torch.tensor([[True, False, True]])
    other = masks.clone()
    other[:, 1] = torch.rand(h, w)  # change only the absent A2C
    assert torch.allclose(enc(masks, present), enc(other, present), atol=1e-6)
    other[:, 2] = torch.rand(h, w)  # change a present view: the code must move
    assert not torch.allclose(enc(masks, present), enc(other, present), atol=1e-4)


def test_anchor_is_first_present_view() -> None:
    present = torch.tensor([[True, True, True], [False, True, True], [False, False, True], [True, False, True]])
    assert anchor_index(present).tolist() == [0, 1, 2, 0]


def test_eca_attends_only_inside_the_epipolar_window() -> None:
    torch.manual_seed(0)
    eca = EpipolarCrossAttention(channels=8, window_rows=1, tau=1.0)
    feats = torch.randn(1, 3, 8, 10, 6)
    present = torch.ones(1, 3, dtype=torch.bool)
    base = eca(feats, present)
    changed = feats.clone()
    changed[:, 1:, :, 7:] += torch.randn(1, 2, 8, 3, 6)  # auxiliary rows 7..9 only
    out = eca(changed, present)
    diff = (out - base).abs().amax(dim=(0, 1, 3))  # per anchor row
    assert torch.all(diff[:6] < 1e-6)  # rows 0..5 see auxiliary rows ≤ 6 only
    assert torch.all(diff[6:] > 1e-6)


def test_eca_without_auxiliary_view_is_identity() -> None:
    eca = EpipolarCrossAttention(channels=4, window_rows=2, tau=2.0)
    feats = torch.randn(2, 3, 4, 5, 5)
    present = torch.tensor([[False, True, False], [True, False, False]])
    out = eca(feats, present)
    assert torch.allclose(out[0], feats[0, 1]) and torch.allclose(out[1], feats[1, 0])


def test_encoder_rejects_an_item_without_views() -> None:
    enc = EpipolarMaskEncoder(TINY)
    h, w = TINY.grid_shape
    with pytest.raises(ValueError, match="at least one present view"):
        enc(torch.rand(1, 3, h, w), torch.zeros(1, 3, dtype=torch.bool))


@pytest.mark.parametrize("activation", ["softplus", "silu"])
def test_decoder_shapes_and_second_derivatives(activation: str) -> None:
    torch.manual_seed(0)
    dec = SDFDecoder(TINY.replace(decoder_activation=activation))
    z = torch.randn(2, TINY.latent_dim)
    x = (torch.randn(2, 50, 3) * 30.0).requires_grad_(True)
    f = dec(z, x)
    assert f.shape == (2, 50)
    (g,) = torch.autograd.grad(f.sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.norm(dim=-1).sum(), x)  # eikonal needs this double backward
    assert g.shape == x.shape and torch.isfinite(h).all() and h.abs().sum() > 0


def test_decoder_rejects_wrong_shapes() -> None:
    dec = SDFDecoder(TINY)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        dec(torch.zeros(2, TINY.latent_dim), torch.zeros(2, 3))


def test_shape_prior_interface() -> None:
    prior = ShapePrior(TINY)
    h, w = TINY.grid_shape
    z = prior.encode(torch.rand(3, 3, h, w), torch.ones(3, 3, dtype=torch.bool))
    assert z.shape == (3, prior.latent_dim)
    x = torch.randn(3, 7, 3) * 20
    assert prior.sdf(z, x).shape == (3, 7)
    f, grad = prior.sdf_and_gradient(z.detach(), x)
    assert f.shape == (3, 7) and grad.shape == (3, 7, 3)
    assert prior.latent_mean.shape == prior.latent_std.shape == (TINY.latent_dim,)


@pytest.mark.parametrize("cfg", [PriorConfig(), TINY], ids=["default", "smoke"])
def test_configs_round_trip_through_dicts(cfg: PriorConfig) -> None:
    assert PriorConfig.from_dict(cfg.to_dict()) == cfg
    tc = TrainConfig(prior=cfg)
    assert TrainConfig.from_dict(tc.to_dict()) == tc
