"""The unseen-region anchor: observation weights from plane geometry, and that it holds decoder
fine-tuning back away from the views while the fine-tuning still fits them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recon_analytic import EllipsoidDecoder, analytic_prior
from torch import Tensor, nn

from models.geometry.frames import VIEW_NAMES, ImagePlane, nominal_plane
from models.geometry.sector import sector_mask
from models.recon.anchor import AnchorConfig, fit_anchor
from models.recon.rendering import PixelBank, ProbeParams
from models.recon.shape_model import ReconPrior
from models.recon.unseen_anchor import build_pool, observation_weight
from tests.models.recon.conftest import SPACING

SHAPE = (160, 128)
AXES = (24.0, 20.0, 44.0)


def _planes() -> dict[str, ImagePlane]:
    return {v: nominal_plane(v, SHAPE, SPACING) for v in VIEW_NAMES}


def _fan() -> np.ndarray:
    return sector_mask(SHAPE, SPACING, 40.0, max_depth_mm=np.inf).astype(bool)


def _probes(planes: dict[str, ImagePlane]) -> ProbeParams:
    pivots = np.stack([p.pixel_to_world(np.array([80.0]), np.array([64.0]))[0] for p in planes.values()])
    return ProbeParams([p.pose for p in planes.values()], pivots, anchored=[True, False, False])


def test_observation_weight_is_zero_in_a_fan_and_one_off_every_plane() -> None:
    planes = _planes()
    a4c = planes["A4C"]
    probes = _probes(planes)
    in_fan = a4c.pixel_to_world(np.array([120.0]), np.array([80.0]))  # 16 px right of the axis, deep
    out_of_fan = a4c.pixel_to_world(np.array([20.0]), np.array([0.0]))  # on the plane, ~70° off axis
    normal = a4c.pose.normal
    on_axis = a4c.pixel_to_world(np.array([120.0]), np.array([63.5]))
    off_plane = on_axis + 20.0 * normal  # 20 mm off A4C, 10 mm off A2C/A3C (60° away about the axis)
    pts = torch.tensor(np.concatenate([in_fan, out_of_fan, off_plane]), dtype=torch.float32)
    w = observation_weight(pts, probes, [SPACING] * 3, [_fan()] * 3, sigma_mm=3.0)
    assert float(w[0]) < 1e-3
    assert float(w[1]) > 0.99
    assert float(w[2]) > 0.9
    # halfway into the Gaussian: 3 mm off the plane leaves exp(-1/2) observed
    near = torch.tensor(in_fan + 3.0 * normal, dtype=torch.float32)
    w_near = observation_weight(near, probes, [SPACING] * 3, [_fan()] * 3, sigma_mm=3.0)
    assert float(w_near[0]) == pytest.approx(1.0 - np.exp(-0.5), abs=0.02)


class ResidualDecoder(nn.Module):
    """Ellipsoid SDF plus a small MLP residual of ``x`` whose output layer starts at zero: the
    latent explains centred ellipsoids, only fine-tuning can explain a shifted one."""

    def __init__(self) -> None:
        super().__init__()
        self.base = EllipsoidDecoder()
        self.hidden = nn.Linear(3, 16)
        self.out = nn.Linear(16, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        res: Tensor = self.out(torch.tanh(self.hidden(x / 50.0)))[..., 0]
        out: Tensor = self.base(z, x) + 5.0 * res
        return out


def _shifted_mask(plane: ImagePlane, shift_mm: float) -> np.ndarray:
    a = np.asarray(AXES)
    pts = plane.grid_points() - np.array([shift_mm, 0.0, a[2]])
    return (((pts / a) ** 2).sum(-1) <= 1.0).astype(np.uint8)


def _unseen_change(weight: float) -> float:
    """Mean squared SDF change (mm²) at unobserved points after fitting a shifted ellipsoid
    with the last two decoder layers fine-tuned and the anchor at ``weight``."""
    torch.manual_seed(0)
    analytic = analytic_prior()
    prior = ReconPrior(ResidualDecoder(), analytic.latent_mean, analytic.latent_std, analytic.encode_frames)
    planes = _planes()
    device = torch.device("cpu")
    masks = [_shifted_mask(p, 3.0)[None] for p in planes.values()]
    fan = _fan()
    bank = PixelBank.build(masks, [SPACING] * 3, device, observed=[fan] * 3)
    probes = _probes(planes)
    z0 = torch.log(torch.tensor(AXES) / torch.tensor([22.0, 22.0, 42.0]))
    box = (torch.tensor([-45.0, -45.0, -10.0]), torch.tensor([45.0, 45.0, 100.0]))
    gen = torch.Generator().manual_seed(0)
    pool = build_pool(prior, z0, probes, [SPACING] * 3, [fan] * 3, box, 2048, 10.0, 3.0, gen)
    assert pool is not None
    cfg = AnchorConfig(max_steps=150, min_steps=150, lr_latent=0.02, latent_lr_in_std=True, finetune_layers=2,
                       lr_decoder=1e-2, optimise_probes=False, points_start=1536, points_end=1536,
                       anneal_steps=100, unseen_anchor_weight=weight)
    fit = fit_anchor(prior, z0, bank, probes, cfg, gen, unseen=pool)
    return float(pool.penalty(fit.prior, fit.z, 8192, torch.Generator().manual_seed(1)))


def test_anchor_holds_back_fine_tuning_where_no_view_looks(one_thread: None) -> None:
    free, anchored = _unseen_change(0.0), _unseen_change(1.0)
    assert free > 0.05, f"fine-tuning changed the unobserved SDF by only {free:.3f} mm²"
    assert anchored < 0.3 * free, f"anchored change {anchored:.3f} mm² vs free {free:.3f} mm²"
