"""Projection onto the zero level set (``project_to_surface``): Newton steps on decoders whose gradient
is not of unit length, the per-point tolerance and the step clamp, against the analytic ellipsoid."""

from __future__ import annotations

import pytest
import torch
from recon_analytic import EllipsoidDecoder, analytic_prior
from torch import Tensor, nn

from models.recon.motion import project_to_surface
from models.recon.shape_model import ReconPrior

AXES = (22.0, 20.0, 42.0)


class ScaledDecoder(nn.Module):
    """``scale ·`` the ellipsoid's distance: the same zero level set, ``‖∇f‖ = scale`` on it."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.inner, self.scale = EllipsoidDecoder(AXES), scale

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        out: Tensor = self.scale * self.inner(z, x)
        return out


def _prior(scale: float) -> ReconPrior:
    base = analytic_prior(AXES)
    return ReconPrior(decoder=ScaledDecoder(scale), latent_mean=base.latent_mean, latent_std=base.latent_std,
                      encode_frames=base.encode_frames, info={"name": f"scaled-ellipsoid-{scale}"})


def _points(offset_mm: Tensor) -> Tensor:
    """(1, N, 3): points ``offset_mm`` (N,) outside (positive) or inside the ellipsoid, along rays from its centre."""
    g = torch.Generator().manual_seed(0)
    u = torch.randn((len(offset_mm), 3), generator=g)
    u = u / u.norm(dim=-1, keepdim=True)
    a = torch.tensor(AXES)
    on = u / (u / a).norm(dim=-1, keepdim=True)  # on the surface, relative to the centre
    out: Tensor = on + offset_mm[:, None] * on / on.norm(dim=-1, keepdim=True) + torch.tensor([0.0, 0.0, AXES[2]])
    return out[None]


def _distance_mm(x: Tensor) -> Tensor:
    with torch.no_grad():
        out: Tensor = EllipsoidDecoder(AXES)(torch.zeros((1, 3)), x)[0].abs()
    return out


@pytest.mark.parametrize("scale", [0.4, 1.0, 2.5])
def test_newton_projection_lands_on_the_surface_whatever_the_gradient_length(scale: float) -> None:
    x = _points(torch.linspace(-6.0, 6.0, 200))
    out = project_to_surface(_prior(scale), torch.zeros((1, 3)), x, iterations=4)
    assert float(_distance_mm(out).max()) < 0.02


def test_tolerance_leaves_points_within_it_where_they_are() -> None:
    offsets = torch.tensor([0.01, -0.02, 0.03, 4.0, -5.0])
    x = _points(offsets)
    out = project_to_surface(_prior(0.5), torch.zeros((1, 3)), x, iterations=8, tol_mm=0.05)
    moved = (out - x)[0].norm(dim=-1)
    assert torch.equal(moved[:3], torch.zeros(3))
    assert bool((moved[3:] > 3.0).all())
    assert float(_distance_mm(out[:, 3:]).max()) <= 0.05


def test_each_step_is_clamped_to_the_maximum_length() -> None:
    x = _points(torch.tensor([12.0, -9.0]))
    out = project_to_surface(_prior(0.5), torch.zeros((1, 3)), x, iterations=1, max_step_mm=3.0)
    assert (out - x)[0].norm(dim=-1).tolist() == pytest.approx([3.0, 3.0], abs=1e-4)


def test_a_batch_projects_each_item_onto_its_own_surface() -> None:
    prior = _prior(0.7)
    z = torch.tensor([[0.0, 0.0, 0.0], [-0.1, -0.1, -0.1]])
    x = _points(torch.linspace(-3.0, 3.0, 50)).expand(2, -1, -1)
    for tol in (0.0, 0.01):
        out = project_to_surface(prior, z, x, iterations=6, tol_mm=tol)
        with torch.no_grad():
            f = prior.sdf(z, out) / 0.7
        assert float(f.abs().max()) < 0.02
