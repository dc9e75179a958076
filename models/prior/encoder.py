"""Epipolar Mask Encoder: 1–3 apical masks on the network grid → latent code z.

Shared 2D CNN backbone Φ1 (ResNet-style basic blocks) per view, learned view embeddings,
Epipolar Cross Attention (each anchor pixel attends to a window of ±w rows around its own
row in every present auxiliary view; apical views share the long axis so equal depth lies
on nearby rows), residual, then Φ2 (strided basic blocks), average pooling and an MLP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.prior.config import PriorConfig

N_VIEWS = 3
_NEG = -1e9


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(4, channels), channels)


class BasicBlock(nn.Module):
    """ResNet-18 basic block (3×3, 3×3, identity or 1×1 shortcut), GroupNorm instead of BatchNorm
    (absent views are zero images inside the batch, so batch statistics would be biased)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.n1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.n2 = _norm(c_out)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.short = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm(c_out))

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.n1(self.conv1(x)))
        y = self.n2(self.conv2(y))
        return F.relu(y + self.short(x))


def anchor_index(present: Tensor) -> Tensor:
    """Index (B,) of the anchor view: the first present view in VIEW_NAMES order."""
    order = torch.arange(present.shape[1], 0, -1, device=present.device)
    return torch.argmax(present.long() * order, dim=1)


class EpipolarCrossAttention(nn.Module):
    """Windowed cross attention from the anchor view to the present auxiliary views.

    ``F̂(p) = F0(p) + Wo Σ_{j ∈ W(p)} softmax_j(Q(p)·K(j)/τ) V(j)`` where W(p) is the union,
    over present auxiliary views, of all columns of rows ``row(p) ± w``. One softmax over the
    union keeps the scale independent of how many views are present; with no auxiliary view
    the update is zero.
    """

    def __init__(self, channels: int, window_rows: int, tau: float) -> None:
        super().__init__()
        self.window = window_rows
        self.tau = tau
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.o = nn.Conv2d(channels, channels, 1)

    def forward(self, feats: Tensor, present: Tensor) -> Tensor:
        """feats (B, V, C, h, w), present (B, V) bool → fused anchor features (B, C, h, w)."""
        b, v, c, h, w = feats.shape
        dev = feats.device
        anchor = anchor_index(present)
        f0 = feats[torch.arange(b, device=dev), anchor]  # (B, C, h, w)
        q = self.q(f0).reshape(b, c, h * w)
        flat = feats.reshape(b * v, c, h, w)
        k = self.k(flat).reshape(b, v, c, h * w).permute(0, 2, 1, 3).reshape(b, c, v * h * w)
        val = self.v(flat).reshape(b, v, c, h * w).permute(0, 2, 1, 3).reshape(b, c, v * h * w)
        # Epipolar band: key row within ±window of the query row, key view present and not the anchor.
        rows = torch.arange(h, device=dev).repeat_interleave(w)  # (h·w,) row of each position
        band = (rows[:, None] - rows[None, :]).abs() <= self.window  # (h·w, h·w)
        aux = present.clone()
        aux[torch.arange(b, device=dev), anchor] = False  # (B, V)
        valid = band[None, :, None, :] & aux[:, None, :, None]  # (B, h·w, V, h·w)
        valid = valid.reshape(b, h * w, v * h * w)
        logits = torch.einsum("bcq,bck->bqk", q, k) / self.tau  # (B, h·w, V·h·w)
        attn = torch.softmax(logits.masked_fill(~valid, _NEG), dim=-1)
        out = torch.einsum("bqk,bck->bcq", attn, val).reshape(b, c, h, w)
        has_aux = aux.any(dim=1).to(out.dtype)[:, None, None, None]
        fused: Tensor = f0 + self.o(out) * has_aux
        return fused


class EpipolarMaskEncoder(nn.Module):
    """``forward(masks (B, V, H, W) in [0, 1] on the network grid, present (B, V) bool) -> z (B, L)``.

    V = 3 in VIEW_NAMES order (A4C, A2C, A3C). Absent views may hold anything (they are
    zeroed and masked). With ``config.use_eca = False`` the attention is replaced by the mean
    of the present views' features (the ablation).
    """

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        c0, c1, c2, c3 = config.encoder_channels
        self.stem = nn.Sequential(nn.Conv2d(3, c0, 3, stride=2, padding=1, bias=False), _norm(c0), nn.ReLU())
        self.phi1 = BasicBlock(c0, c1, stride=2)
        self.view_embed = nn.Parameter(torch.zeros(N_VIEWS, c1)) if config.view_embedding else None
        self.eca = (EpipolarCrossAttention(c1, config.eca_window_rows, config.eca_temperature)
                    if config.use_eca else None)
        self.phi2 = nn.Sequential(BasicBlock(c1, c2, stride=2), BasicBlock(c2, c3, stride=2))
        hidden = config.encoder_mlp_hidden
        self.mlp = nn.Sequential(nn.Linear(c3 + N_VIEWS, hidden), nn.ReLU(), nn.Linear(hidden, config.latent_dim))

    def coordinate_channels(self, h: int, w: int, device: torch.device) -> Tensor:
        """Depth and lateral position (2, H, W) in units of 100 mm: mm positions survive pooling."""
        g = self.config.grid_spacing_mm / 100.0
        rows = torch.arange(h, device=device, dtype=torch.float32) * g
        cols = (torch.arange(w, device=device, dtype=torch.float32) - (w - 1) / 2.0) * g
        return torch.stack([rows[:, None].expand(h, w), cols[None, :].expand(h, w)])

    def forward(self, masks: Tensor, present: Tensor) -> Tensor:
        if masks.dim() != 4 or masks.shape[1] != N_VIEWS or present.shape != masks.shape[:2]:
            raise ValueError(f"expected masks (B, {N_VIEWS}, H, W) and present (B, {N_VIEWS}), "
                             f"got {tuple(masks.shape)} and {tuple(present.shape)}")
        present = present.bool()
        if not bool(present.any(dim=1).all()):
            raise ValueError("every batch item needs at least one present view")
        b, v, h, w = masks.shape
        m = masks * present[:, :, None, None].to(masks.dtype)
        coords = self.coordinate_channels(h, w, masks.device)
        x = torch.cat([m.reshape(b * v, 1, h, w), coords[None].expand(b * v, 2, h, w)], dim=1)
        feats = self.phi1(self.stem(x))  # (B·V, C1, h/4, w/4)
        feats = feats.reshape(b, v, *feats.shape[1:])
        if self.view_embed is not None:
            feats = feats + self.view_embed[None, :, :, None, None]
        if self.eca is not None:
            fused = self.eca(feats, present)
        else:
            weight = present.to(feats.dtype)[:, :, None, None, None]
            fused = (feats * weight).sum(dim=1) / weight.sum(dim=1)
        pooled = self.phi2(fused).mean(dim=(2, 3))  # (B, C3)
        z: Tensor = self.mlp(torch.cat([pooled, present.to(pooled.dtype)], dim=1))
        return z
