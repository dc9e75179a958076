"""SDF-tailored differentiable rendering of apical masks (reference §2.2).

* :class:`ProbeParams` — one learnable probe pose per view, a residual on an initial pose
  ``x0 = s0·R0·p + t0``, in two steps that mirror how a real probe errs:

  1. **foreshortening** φ (rad): a rotation ``F`` about the view's lateral axis ``R0·e0``
     through its base midpoint ``b`` (the plane keeps its base and misses the apex by about
     ``L·sin φ``): ``R1 = F·R0 = R0·exp([φ·e0])``, ``t1 = b + F·(t0 − b)``;
  2. the general residual, in the moved view's own axes (lateral, depth, normal): rotation ω
     (axis-angle, rad: ω₀ tilt, ω₁ azimuth about the long axis, ω₂ in plane) about the pivot
     ``c`` (the mask centroid, moved by ``F``: ``c1 = b + F·(c − b)``), translation δ (mm) and a
     log-scale: with ``Q = R1·exp([ω])·R1ᵀ``, ``R = R1·exp([ω])``, ``s = e^ls·s0``,
     ``t = c1 + e^ls·Q·(t1 − c1) + R1·δ``.

  Each degree of freedom has its own prior width (:func:`models.recon.anchor.probe_penalty`);
  foreshortening is a pure rotation about the base, so it is penalised once. Views listed as
  anchored keep their initial pose exactly (gauge fixing).
* :func:`pixels_to_points` — pixel (row, col) → canonical point, following
  :mod:`models.geometry.frames`: ``p = (c·sc, r·sr, 0)``, ``x = s·R·p + t``.
* :class:`PixelBank` — the observed masks of one or more frames as flat tensors plus
  boundary-weighted sampling distributions (more pixels near the mask boundary, from a
  Euclidean distance transform in mm).
* :func:`render_loss` — soft mask ``σ(−α·f)`` against the observed mask: BCE + λ·Dice.

Units: everything is in mm. The reference's α (20 → 150) is given for SDFs normalised to
the unit sphere; :func:`alpha_per_mm` converts it with the length of one SDF unit in mm.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from scipy import ndimage
from torch import Tensor, nn

from models.geometry.frames import ProbePose
from models.recon.optim import Adam
from models.recon.sampling import cumulative_rows, sample_rows


def skew(w: Tensor) -> Tensor:
    """Skew-symmetric matrices (..., 3, 3) of vectors (..., 3)."""
    zero = torch.zeros_like(w[..., 0])
    return torch.stack(
        [
            torch.stack([zero, -w[..., 2], w[..., 1]], -1),
            torch.stack([w[..., 2], zero, -w[..., 0]], -1),
            torch.stack([-w[..., 1], w[..., 0], zero], -1),
        ],
        -2,
    )


def axis_angle_to_matrix(w: Tensor) -> Tensor:
    """Rotation matrices (..., 3, 3) from axis-angle vectors (..., 3) (radians), differentiable at 0."""
    out: Tensor = torch.linalg.matrix_exp(skew(w))
    return out


def pixels_to_points(pixel_rc: Tensor, spacing_mm: Tensor, rotation: Tensor, translation: Tensor,
                     scale: Tensor) -> Tensor:
    """Pixel indices → canonical points, ``x = s·R·(c·sc, r·sr, 0) + t``.

    Shapes broadcast over a leading view axis: ``pixel_rc`` (..., N, 2) as (row, col),
    ``spacing_mm`` (..., 2) as (row, col), ``rotation`` (..., 3, 3), ``translation`` (..., 3),
    ``scale`` (...,). Returns (..., N, 3) mm.
    """
    lateral = pixel_rc[..., 1] * spacing_mm[..., 1:2]  # (..., N)
    depth = pixel_rc[..., 0] * spacing_mm[..., 0:1]
    axes = rotation * scale[..., None, None]
    return (lateral[..., None] * axes[..., None, :, 0] + depth[..., None] * axes[..., None, :, 1]
            + translation[..., None, :])


class ProbeParams(nn.Module):
    """Learnable probe poses for V views, residuals on their initial poses.

    Buffers: ``rot0`` (V, 3, 3), ``trans0`` (V, 3), ``scale0`` (V,), ``pivot`` (V, 3) mm (mask
    centroids), ``base`` (V, 3) mm (base midpoints; the pivots when not given), ``free`` (V,) 1 for
    optimisable views, 0 for anchored ones. Parameters: ``fs`` (V,) rad foreshortening, ``omega``
    (V, 3) rad and ``delta`` (V, 3) mm in the view's (lateral, depth, normal) axes, ``log_scale`` (V,).
    """

    rot0: Tensor
    trans0: Tensor
    scale0: Tensor
    pivot: Tensor
    base: Tensor
    free: Tensor
    scale_free: Tensor

    def __init__(self, poses: Sequence[ProbePose], pivots_mm: NDArray[np.float64], anchored: Sequence[bool],
                 optimise_scale: bool = False, bases_mm: NDArray[np.float64] | None = None) -> None:
        super().__init__()
        v = len(poses)
        self.register_buffer("rot0", torch.tensor(np.stack([p.rotation for p in poses]), dtype=torch.float32))
        self.register_buffer("trans0", torch.tensor(np.stack([p.translation for p in poses]), dtype=torch.float32))
        self.register_buffer("scale0", torch.tensor([p.scale for p in poses], dtype=torch.float32))
        self.register_buffer("pivot", torch.tensor(np.asarray(pivots_mm).reshape(v, 3), dtype=torch.float32))
        base = pivots_mm if bases_mm is None else bases_mm
        self.register_buffer("base", torch.tensor(np.asarray(base).reshape(v, 3), dtype=torch.float32))
        free = torch.tensor([0.0 if a else 1.0 for a in anchored])
        self.register_buffer("free", free)
        self.register_buffer("scale_free", free * (1.0 if optimise_scale else 0.0))
        self.fs = nn.Parameter(torch.zeros(v))
        self.omega = nn.Parameter(torch.zeros(v, 3))
        self.delta = nn.Parameter(torch.zeros(v, 3))
        self.log_scale = nn.Parameter(torch.zeros(v))

    @property
    def n_views(self) -> int:
        return int(self.rot0.shape[0])

    def optimiser(self, lr_rad: float, sdf_unit_mm: float, scale: bool = True) -> Adam:
        """Adam over the residuals: ``fs`` and ``omega`` at ``lr_rad``, ``delta`` at ``lr_rad · sdf_unit_mm``
        mm (the reference's unit-sphere step in mm) and, with ``scale``, ``log_scale`` at ``lr_rad`` (it moves
        only where the scale is free)."""
        groups: list[tuple[list[Tensor], float]] = [([self.fs, self.omega], lr_rad),
                                                    ([self.delta], lr_rad * sdf_unit_mm)]
        if scale:
            groups.append(([self.log_scale], lr_rad))
        return Adam(groups)

    def transforms(self) -> tuple[Tensor, Tensor, Tensor]:
        """Current ``R`` (V, 3, 3), ``t`` (V, 3) mm and ``s`` (V,)."""
        fs = self.fs * self.free
        zero = torch.zeros_like(fs)
        tilt = axis_angle_to_matrix(torch.stack([fs, zero, zero], -1))
        rot1 = self.rot0 @ tilt
        turn = rot1 @ self.rot0.transpose(-1, -2)  # F, the world rotation about the lateral axis
        trans1 = self.base + torch.einsum("vij,vj->vi", turn, self.trans0 - self.base)
        pivot = self.base + torch.einsum("vij,vj->vi", turn, self.pivot - self.base)
        local = axis_angle_to_matrix(self.omega * self.free[:, None])
        k = torch.exp(self.log_scale * self.scale_free)
        rotation = rot1 @ local
        world = rotation @ rot1.transpose(-1, -2)
        scale = k * self.scale0
        arm = torch.einsum("vij,vj->vi", world, trans1 - pivot)
        shift = torch.einsum("vij,vj->vi", rot1, self.delta * self.free[:, None])
        translation = pivot + k[:, None] * arm + shift
        return rotation, translation, scale

    def select(self, views: Sequence[int]) -> ProbeParams:
        """A new module holding copies of the listed views' probes (repeats allowed), same residuals."""
        out = ProbeParams.__new__(ProbeParams)
        nn.Module.__init__(out)
        idx = torch.tensor(list(views), dtype=torch.long, device=self.rot0.device)
        for name in ("rot0", "trans0", "scale0", "pivot", "base", "free", "scale_free"):
            out.register_buffer(name, getattr(self, name)[idx].clone())
        out.fs = nn.Parameter(self.fs.detach()[idx].clone())
        out.omega = nn.Parameter(self.omega.detach()[idx].clone())
        out.delta = nn.Parameter(self.delta.detach()[idx].clone())
        out.log_scale = nn.Parameter(self.log_scale.detach()[idx].clone())
        return out

    def set_foreshortening(self, view: int, angle_rad: float) -> None:
        """Set view ``view``'s foreshortening tilt (rad, a multi-start candidate)."""
        with torch.no_grad():
            self.fs[view] = float(angle_rad)

    def poses(self) -> list[ProbePose]:
        """The current poses as :class:`ProbePose` (float64, detached)."""
        with torch.no_grad():
            rot, trans, scale = self.transforms()
        r = rot.detach().cpu().double().numpy()
        out = []
        for i in range(self.n_views):
            u, _, vt = np.linalg.svd(r[i])  # re-orthonormalise the float32 result
            out.append(ProbePose(u @ vt, trans[i].detach().cpu().double().numpy(), float(scale[i])))
        return out

    def residual_summary(self) -> list[dict[str, float]]:
        """Per view: foreshortening tilt (deg), rotation residual (deg; also per axis: tilt, azimuth,
        in-plane), translation residual (mm), scale factor."""
        with torch.no_grad():
            fs = self.fs * self.free
            omega = self.omega * self.free[:, None]
            delta = (self.delta * self.free[:, None]).norm(dim=-1)
            k = torch.exp(self.log_scale * self.scale_free)
        return [
            {"foreshortening_deg": math.degrees(float(fs[i])), "rotation_deg": math.degrees(float(omega[i].norm())),
             "tilt_deg": math.degrees(float(omega[i, 0])),
             "azimuth_deg": math.degrees(float(omega[i, 1])), "inplane_deg": math.degrees(float(omega[i, 2])),
             "translation_mm": float(delta[i]), "scale": float(k[i])}
            for i in range(self.n_views)
        ]


def boundary_weights(mask: NDArray[np.uint8], spacing_mm: tuple[float, float], sigma_mm: float,
                     floor: float, roi_margin_mm: float) -> NDArray[np.float64]:
    """Sampling weights (H, W) for one mask: ``exp(−d/σ) + floor`` inside a region of interest.

    ``d`` is the distance (mm) of each pixel to the mask boundary (Euclidean distance
    transform with the anisotropic pixel spacing). Pixels farther than ``roi_margin_mm``
    outside the mask get weight 0: they carry no information the rest does not.
    """
    m = mask.astype(bool)
    d_out = ndimage.distance_transform_edt(~m, sampling=spacing_mm)
    d_in = ndimage.distance_transform_edt(m, sampling=spacing_mm)
    d = np.where(m, d_in, d_out)
    w = np.exp(-d / sigma_mm) + floor
    w[(~m) & (d_out > roi_margin_mm)] = 0.0
    return np.asarray(w / w.sum(), dtype=np.float64)


@dataclass
class PixelBank:
    """Observed masks of K frames × V views, padded to a common (H, W), ready to sample.

    ``targets`` (K, V, H·W) float {0, 1}; ``probs`` (K·V, H·W) sampling probabilities
    (boundary weighted, 0 on padding); ``spacing`` (V, 2) mm; ``shape`` (H, W); ``width`` W;
    ``cdf`` (K·V, H·W) float64 and ``valid`` (K·V,) the rows' cumulative distributions, built once
    (:mod:`models.recon.sampling`: the same draws as ``torch.multinomial`` on ``probs``).
    """

    targets: Tensor
    probs: Tensor
    spacing: Tensor
    shape: tuple[int, int]
    cdf: Tensor
    valid: Tensor

    @property
    def n_frames(self) -> int:
        return int(self.targets.shape[0])

    @property
    def n_views(self) -> int:
        return int(self.targets.shape[1])

    @classmethod
    def build(cls, masks: Sequence[NDArray[np.uint8]], spacings: Sequence[tuple[float, float]],
              device: torch.device, sigma_mm: float = 3.0, floor: float = 0.02,
              roi_margin_mm: float = 25.0, observed: Sequence[NDArray[np.bool_] | None] | None = None) -> PixelBank:
        """``masks[v]`` (K, H_v, W_v) uint8 per view (same K for every view); ``observed[v]`` (H_v, W_v)
        marks the pixels the probe actually images (the sector): the others are never sampled."""
        k = int(masks[0].shape[0])
        h = max(int(m.shape[1]) for m in masks)
        w = max(int(m.shape[2]) for m in masks)
        targets = np.zeros((k, len(masks), h, w), dtype=np.float32)
        probs = np.zeros((k, len(masks), h, w), dtype=np.float64)
        for v, (m, sp) in enumerate(zip(masks, spacings, strict=True)):
            hv, wv = m.shape[1:]
            targets[:, v, :hv, :wv] = m
            seen = observed[v] if observed is not None else None
            for f in range(k):
                w_f = boundary_weights(m[f], sp, sigma_mm, floor, roi_margin_mm)
                if seen is not None:
                    w_f = w_f * seen
                probs[f, v, :hv, :wv] = w_f / max(float(w_f.sum()), 1e-12)
        probs_t = torch.tensor(probs.reshape(k * len(masks), h * w), dtype=torch.float32, device=device)
        cdf, valid = cumulative_rows(probs_t)
        return cls(
            targets=torch.tensor(targets.reshape(k, len(masks), h * w), device=device),
            probs=probs_t,
            spacing=torch.tensor(np.asarray(spacings, dtype=np.float32), device=device),
            shape=(h, w),
            cdf=cdf,
            valid=valid,
        )

    def select(self, views: Sequence[int]) -> PixelBank:
        """The bank restricted to (or repeating) the listed views, in that order."""
        idx = torch.tensor(list(views), dtype=torch.long, device=self.targets.device)
        k, v = self.n_frames, self.n_views
        probs = self.probs.reshape(k, v, -1)[:, idx].reshape(k * len(idx), -1)
        cdf = self.cdf.reshape(k, v, -1)[:, idx].reshape(k * len(idx), -1)
        valid = self.valid.reshape(k, v)[:, idx].reshape(-1)
        return PixelBank(self.targets[:, idx], probs, self.spacing[idx], self.shape, cdf, valid)

    def sample(self, frames: Tensor, n_per_view: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw ``n_per_view`` pixels per (frame, view), boundary weighted, with replacement.

        ``frames`` (B,) long frame indices. Returns pixel (row, col) (B, V, n, 2) float and the
        observed values (B, V, n) float.
        """
        v = self.n_views
        rows = (frames[:, None] * v + torch.arange(v, device=frames.device)[None]).reshape(-1)
        if len(rows) == len(self.probs) and bool((rows == torch.arange(len(rows), device=rows.device)).all()):
            probs, cdf, valid = self.probs, self.cdf, self.valid  # every row, in order: no copy
        else:
            probs, cdf, valid = self.probs[rows], self.cdf[rows], self.valid[rows]
        idx = sample_rows(probs, cdf, valid, n_per_view, generator)
        idx = idx.reshape(len(frames), v, n_per_view)
        target = torch.gather(self.targets[frames], 2, idx)
        w = self.shape[1]
        rc = torch.stack([torch.div(idx, w, rounding_mode="floor"), idx % w], -1).to(torch.float32)
        return rc, target


def alpha_per_mm(alpha_start: float, alpha_end: float, sdf_unit_mm: float, progress: float) -> float:
    """Sigmoid sharpness (1/mm) at ``progress`` ∈ [0, 1], annealed geometrically start → end.

    ``alpha_*`` are in the reference's units (SDF normalised so that one unit is ``sdf_unit_mm``).
    """
    p = min(max(progress, 0.0), 1.0)
    return float(alpha_start * (alpha_end / alpha_start) ** p / sdf_unit_mm)


def render_loss_per_view(sdf_mm: Tensor, target: Tensor, alpha: float, dice_weight: float = 0.5) -> Tensor:
    """BCE + ``dice_weight``·Dice of the soft masks ``σ(−α·f)`` against observed masks, per view (V,).

    ``sdf_mm`` and ``target`` (B, V, N); BCE is averaged over a view's pixels, Dice is computed
    per (frame, view) over its N sampled pixels; both are averaged over frames.
    """
    logits = -alpha * sdf_mm
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(0, 2))
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(-1)
    dice = 1.0 - (2.0 * inter + 1.0) / (prob.sum(-1) + target.sum(-1) + 1.0)
    out: Tensor = bce + dice_weight * dice.mean(0)
    return out


def render_loss(sdf_mm: Tensor, target: Tensor, alpha: float, dice_weight: float = 0.5) -> Tensor:
    """The mean over views of :func:`render_loss_per_view` (scalar); ``sdf_mm``, ``target`` (B, V, N)."""
    return render_loss_per_view(sdf_mm, target, alpha, dice_weight).mean()


def render_points(probes: ProbeParams, pixel_rc: Tensor, spacing: Tensor) -> Tensor:
    """Canonical points (B, V, N, 3) of sampled pixels (B, V, N, 2) under the current poses."""
    rot, trans, scale = probes.transforms()
    return pixels_to_points(pixel_rc, spacing, rot, trans, scale)
