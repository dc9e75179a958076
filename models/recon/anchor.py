"""Test-time optimisation of the anchor frame (ED): latent shape and probe poses (reference §2.2, §3.1).

The latent ``z`` starts from the encoder, the probes from :mod:`models.recon.poses`.
Steps alternate ``shape_steps`` updates of the shape (the latent, optionally the decoder's
last linear layers) with ``probe_steps`` updates of the free probes (the reference's 8:2).
Loss: BCE + 0.5·Dice of the soft rendered masks over boundary-weighted pixel samples, plus
``prior_weight`` × the mean squared Mahalanobis distance of ``z`` to the training latents
(diagonal covariance) so the shape stays plausible where no view constrains it; with ``prior_centre``
``"encoder"`` the same distance is taken to the encoder's latent instead: the encoder, trained with
views dropped, predicts the sectors no view shows from the views there are, where the population
mean knows nothing of the patient.

Gauge: a rigid motion (and a global scale) of every probe and the shape together leaves all
rendered masks unchanged. ``ReconConfig.gauge`` fixes it: ``anchor`` keeps the first view's
pose, ``longest`` the pose of the view with the longest visible cavity (the least
foreshortened), ``soft`` leaves every probe free and lets the probe prior and the canonical
shape prior pin the frame. Probe scale is frozen unless ``optimise_scale``: pixel spacing is
known, and a free per-view scale trades off against size.

Foreshortening multi-start (:func:`choose_foreshortening`): after the shape-only warm-up,
every view with more than one candidate foreshortening tilt (:mod:`models.recon.poses`) runs
a short probe-only fit from each candidate with the shape held; the candidate with the lowest
loss (render + probe prior) is kept.

Decoder fine-tuning starts only after ``finetune_start_steps`` (the probes settle first, so
the decoder does not learn to explain a wrongly posed plane), and the pool of unobserved points
that holds it back is rebuilt every ``unseen_refresh_steps`` as the probes move.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn

from models.recon.control import StageControl
from models.recon.optim import Adam
from models.recon.rendering import (
    PixelBank,
    ProbeParams,
    alpha_per_mm,
    render_loss,
    render_loss_per_view,
    render_points,
)
from models.recon.schedule import EarlyStopper, cosine_factor, point_count
from models.recon.shape_model import ReconPrior
from models.recon.unseen_anchor import UnseenPool

PRIOR_CENTRES = ("mean", "encoder")
"""Where the latent prior is centred (``AnchorConfig.prior_centre``): the training latents' mean or the
encoder's latent."""


@dataclass(frozen=True)
class AnchorConfig:
    """Schedule of the ED test-time optimisation. Learning rates are Adam's.

    ``lr_latent`` is in units of the latent's training standard deviation when
    ``latent_lr_in_std`` (whitened parameterisation), else in raw latent units (the
    reference's 5e-4). ``lr_probe`` is radians for the rotation residual; the translation
    uses ``lr_probe · sdf_unit_mm`` mm (the reference's units are a unit-sphere SDF).

    The first ``probe_warmup_steps`` update the shape only (the encoder's shape is close, and
    early probe moves would absorb its errors). Both learning rates follow a cosine decay to
    ``lr_floor`` over ``lr_decay_steps`` (1.0 = constant, the reference).
    ``probe_prior_weight`` × mean over free views of ``Σ_k (ω_k/σ_k)² + Σ_k (δ_k/σ'_k)²`` keeps
    the probes near their initial poses where the masks do not decide (a rotation about the long
    axis of a nearly axisymmetric cavity changes a mask very little). ω is in the view's axes
    (:class:`models.recon.rendering.ProbeParams`), each with its own σ: ``probe_sigma_tilt_deg``
    (about the lateral axis through mid-cavity), ``probe_sigma_deg`` (azimuth, about the long
    axis), ``probe_sigma_inplane_deg``; δ: ``probe_sigma_mm`` in plane, ``probe_sigma_out_mm``
    along the normal; the foreshortening φ (about the lateral axis through the base — a pure
    rotation there, so it is penalised once) has ``probe_sigma_fs_deg``.
    ``foreshortening_probe_steps`` probe-only steps per candidate in :func:`choose_foreshortening`
    (0: no multi-start).
    ``prior_centre``: where the latent prior is centred, one of :data:`PRIOR_CENTRES` (see the module
    docstring); ``"mean"`` in every profile (``"encoder"`` with weight 0.1: better surfaces; from two
    views a worse EF on the real LV, from three worse volumes; docs/results.md, "Session 15").
    ``unseen_anchor_weight`` × the mean squared SDF change (mm²) of the fine-tuned decoder at
    ``unseen_anchor_points`` unobserved points per shape step (:mod:`models.recon.unseen_anchor`)
    holds the fine-tuning back where no view looks; 0 disables it.
    ``joint_es``: a sequence's anchor fits an end-systolic latent beside the ED one, both seen by the same
    probes (the same points per step, split between the two frames), so that the probe poses explain the
    systolic masks too; only the ED latent is kept.
    """

    max_steps: int = 1500
    min_steps: int = 1500
    shape_steps: int = 8
    probe_steps: int = 2
    lr_latent: float = 5e-4
    latent_lr_in_std: bool = False
    lr_probe: float = 5e-3
    lr_decoder: float = 0.0
    finetune_layers: int = 0
    points_start: int = 4096
    points_end: int = 4096
    points_ramp_steps: int = 0
    alpha_start: float = 20.0
    alpha_end: float = 150.0
    anneal_steps: int = 1500
    sdf_unit_mm: float = 50.0
    dice_weight: float = 0.5
    prior_weight: float = 1e-3
    prior_centre: str = "mean"
    probe_warmup_steps: int = 0
    probe_prior_weight: float = 0.0
    probe_sigma_deg: float = 10.0
    probe_sigma_fs_deg: float = 10.0
    probe_sigma_tilt_deg: float = 10.0
    probe_sigma_inplane_deg: float = 10.0
    probe_sigma_mm: float = 5.0
    probe_sigma_out_mm: float = 5.0
    foreshortening_probe_steps: int = 0
    finetune_start_steps: int = 0
    unseen_refresh_steps: int = 0
    lr_decay_steps: int = 0
    lr_floor: float = 1.0
    patience: int = 0
    rel_tol: float = 2e-3
    boundary_sigma_mm: float = 3.0
    optimise_probes: bool = True
    optimise_scale: bool = False
    unseen_anchor_weight: float = 0.0
    unseen_anchor_points: int = 512
    unseen_band_mm: float = 10.0
    unseen_plane_sigma_mm: float = 3.0
    joint_es: bool = False

    @property
    def decoder_layers(self) -> int:
        """How many of the decoder's last linear layers are fine-tuned (0 when its lr is 0)."""
        return self.finetune_layers if self.lr_decoder > 0 else 0

    @property
    def holds_back_unseen(self) -> bool:
        """True when decoder fine-tuning is held back where no view looks."""
        return self.decoder_layers > 0 and self.unseen_anchor_weight > 0


@dataclass
class AnchorFit:
    """Result of :func:`fit_anchor`: latent ``z`` (L,), the probes, the (maybe fine-tuned) prior and the
    foreshortening tilts (V,) rad the multi-start chose (the tilt residuals when it did not run)."""

    z: Tensor
    probes: ProbeParams
    prior: ReconPrior
    steps: int
    stopped_early: bool
    seconds: float
    loss_history: list[float] = field(default_factory=list)
    tilts_rad: list[float] = field(default_factory=list)


class LatentParam(nn.Module):
    """A latent vector, optionally whitened: ``z = μ + σ ⊙ u`` with ``u`` learnable.

    ``z0`` (B, L) initial latents; ``mean``/``std`` (L,); ``centre`` (B, L) or (L,) where the latent prior
    (:meth:`mahalanobis`) is centred, ``mean`` when None.
    """

    mean: Tensor
    std: Tensor
    centre: Tensor

    def __init__(self, z0: Tensor, mean: Tensor, std: Tensor, whitened: bool, centre: Tensor | None = None) -> None:
        super().__init__()
        self.whitened = whitened
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone().clamp_min(1e-6))
        self.register_buffer("centre", (mean if centre is None else centre).detach().clone())
        init = (z0 - mean) / self.std if whitened else z0
        self.value = nn.Parameter(init.detach().clone())

    def forward(self) -> Tensor:
        if self.whitened:
            z: Tensor = self.mean + self.std * self.value
            return z
        return self.value

    def mahalanobis(self, z: Tensor) -> Tensor:
        """Mean squared Mahalanobis distance (scalar) of latents (..., L) to the prior's centre (the training
        latents' mean unless given), in the training latents' standard deviations."""
        return (((z - self.centre) / self.std) ** 2).mean()

    def curvature(self, z: Tensor) -> Tensor:
        """Mean squared second difference over time (scalar) of latents (T, L), in training standard
        deviations: ``mean_t ‖(z_{t+1} − 2z_t + z_{t−1})/σ‖² / L``. Frame-to-frame jitter costs, a
        smooth cycle (20 frames of a sinusoid: about 0.1 of its amplitude) hardly."""
        second = (z[2:] - 2.0 * z[1:-1] + z[:-2]) / self.std
        return (second**2).mean()


def linear_call_order(decoder: nn.Module, latent_dim: int, device: torch.device) -> list[nn.Linear]:
    """The decoder's linear layers in the order a forward pass calls them (found with hooks)."""
    order: list[nn.Linear] = []
    hooks = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
             for m in decoder.modules() if isinstance(m, nn.Linear)]
    if not hooks:
        return []
    try:
        with torch.no_grad():
            decoder(torch.zeros(1, latent_dim, device=device), torch.zeros(1, 1, 3, device=device))
    finally:
        for h in hooks:
            h.remove()
    return list(dict.fromkeys(order))


def finetunable_copy(prior: ReconPrior, n_layers: int) -> tuple[ReconPrior, list[nn.Parameter]]:
    """A copy of ``prior`` whose decoder's last ``n_layers`` linear layers (in call order: the
    output layer and the hidden layers just before it) are trainable.

    The shared prior is never modified: a reconstruction fine-tunes its own copy.
    """
    if n_layers <= 0:
        return prior, []
    decoder = copy.deepcopy(prior.decoder)
    for p in decoder.parameters():
        p.requires_grad_(False)
    linears = linear_call_order(decoder, prior.latent_dim, prior.latent_mean.device)
    if not linears:
        return prior, []
    params: list[nn.Parameter] = []
    for layer in linears[-n_layers:]:
        for p in layer.parameters():
            p.requires_grad_(True)
            params.append(p)
    return replace(prior, decoder=decoder), params


def probe_sigmas(cfg: AnchorConfig, device: torch.device) -> tuple[Tensor, Tensor]:
    """Per-axis prior widths: rotation (3,) rad (tilt, azimuth, in-plane), translation (3,) mm."""
    rot = torch.tensor([math.radians(cfg.probe_sigma_tilt_deg), math.radians(cfg.probe_sigma_deg),
                        math.radians(cfg.probe_sigma_inplane_deg)], device=device)
    mm = torch.tensor([cfg.probe_sigma_mm, cfg.probe_sigma_mm, cfg.probe_sigma_out_mm], device=device)
    return rot, mm


def probe_penalty_per_view(probes: ProbeParams, cfg: AnchorConfig) -> Tensor:
    """``(φ/σ_φ)² + Σ_k (ω_k/σ_k)² + Σ_k (δ_k/σ'_k)²`` per view (V,) (0 for anchored views)."""
    rot, mm = probe_sigmas(cfg, probes.omega.device)
    per_view = ((probes.fs / math.radians(cfg.probe_sigma_fs_deg)) ** 2 + ((probes.omega / rot) ** 2).sum(-1)
                + ((probes.delta / mm) ** 2).sum(-1))
    return per_view * probes.free


def probe_penalty(probes: ProbeParams, cfg: AnchorConfig) -> Tensor:
    """Mean over free views of :func:`probe_penalty_per_view` (scalar)."""
    out: Tensor = probe_penalty_per_view(probes, cfg).sum() / probes.free.sum().clamp_min(1.0)
    return out


def choose_foreshortening(prior: ReconPrior, z: Tensor, bank: PixelBank, probes: ProbeParams,
                          candidates: Sequence[Sequence[float]], cfg: AnchorConfig,
                          generator: torch.Generator) -> list[float]:
    """Keep, per view, the best of its candidate foreshortening tilts (rad) after a short fit.

    ``z`` (L,) the shape (held). Each (view, candidate) pair is a copy of the view's probe with
    its tilt residual set to the candidate; ``foreshortening_probe_steps`` probe-only steps fit
    all copies at once (they do not interact with the shape held), then each copy is scored
    by its render loss plus probe prior on a fresh sample and the best copy's residuals are
    written back into ``probes``. Returns the chosen tilts (V,) rad (as fitted).
    """
    pairs = [(v, c) for v in range(probes.n_views) for c in candidates[v]
             if len(candidates[v]) > 1 and bool(probes.free[v])]
    chosen = [float(w) for w in probes.fs.detach()]
    if not pairs or cfg.foreshortening_probe_steps <= 0:
        return chosen
    idx = [v for v, _ in pairs]
    copies = probes.select(idx)
    for i, (_, c) in enumerate(pairs):
        copies.set_foreshortening(i, c)
    sub = bank.select(idx)
    opt = copies.optimiser(cfg.lr_probe, cfg.sdf_unit_mm, scale=False)
    frames = torch.zeros(1, dtype=torch.long, device=z.device)
    n = max(cfg.points_end // max(bank.n_views, 1), 64)
    alpha = alpha_per_mm(cfg.alpha_start, cfg.alpha_end, cfg.sdf_unit_mm, 0.5)
    zd = z.detach()[None]

    def losses() -> Tensor:
        rc, target = sub.sample(frames, n, generator)
        x = render_points(copies, rc, sub.spacing)
        f = prior.sdf(zd, x.reshape(1, -1, 3)).reshape(target.shape)
        return render_loss_per_view(f, target, alpha, cfg.dice_weight) + \
            cfg.probe_prior_weight * probe_penalty_per_view(copies, cfg)

    for _ in range(cfg.foreshortening_probe_steps):
        opt.zero_grad()
        losses().mean().backward()  # type: ignore[no-untyped-call]
        opt.step()
    with torch.no_grad():
        score = torch.stack([losses() for _ in range(4)]).mean(0)
    best: dict[int, int] = {}
    for i, (v, _) in enumerate(pairs):
        if v not in best or float(score[i]) < float(score[best[v]]):
            best[v] = i
    with torch.no_grad():
        for v, i in best.items():
            probes.fs[v] = copies.fs[i]
            probes.omega[v] = copies.omega[i]
            probes.delta[v] = copies.delta[i]
            chosen[v] = float(copies.fs[i])
    return chosen


def fit_anchor(prior: ReconPrior, z0: Tensor, bank: PixelBank, probes: ProbeParams, cfg: AnchorConfig,
               generator: torch.Generator, control: StageControl | None = None,
               unseen: UnseenPool | Callable[[Tensor], UnseenPool | None] | None = None,
               candidates: Sequence[Sequence[float]] | None = None) -> AnchorFit:
    """Fit latent and probes to ``bank``: frame 0 the ED masks of every view, a frame 1 (when present) the
    ES masks, fitted with their own latent under the same probes.

    ``z0`` (L,) the initial ED latent, or (F, L) one per frame of ``bank``; ``unseen`` the points where
    decoder fine-tuning is held back (used when the config fine-tunes and ``unseen_anchor_weight`` > 0),
    or a function of the current ED latent (L,) that builds them under the current probes (called when fine-tuning
    starts and every ``unseen_refresh_steps`` after); ``candidates`` per view the foreshortening
    tilts (rad) of :func:`choose_foreshortening`, run when the shape-only warm-up ends. Returns
    the fitted ED latent (L,), the fitted probes (the same module, updated in place), the prior
    actually used (a fine-tuned copy if requested) and, in ``tilts_rad``, the chosen tilts.
    """
    start = time.perf_counter()
    device = z0.device
    prior, decoder_params = finetunable_copy(prior, cfg.decoder_layers)
    z_start = z0[None] if z0.dim() == 1 else z0
    latent = LatentParam(z_start, prior.latent_mean, prior.latent_std, cfg.latent_lr_in_std,
                         centre=z_start if cfg.prior_centre == "encoder" else None).to(device)
    shape_groups: list[tuple[list[Tensor], float]] = [([latent.value], cfg.lr_latent)]
    if decoder_params:
        shape_groups.append((list(decoder_params), cfg.lr_decoder))
    shape_opt = Adam(shape_groups)
    probe_opt = probes.optimiser(cfg.lr_probe, cfg.sdf_unit_mm)
    optimise_probes = cfg.optimise_probes and bool(probes.free.any()) and cfg.probe_steps > 0
    cycle = cfg.shape_steps + (cfg.probe_steps if optimise_probes else 0)
    stopper = EarlyStopper(cfg.patience, cfg.rel_tol, max(cfg.min_steps, cfg.anneal_steps))
    holds_back = bool(decoder_params) and cfg.holds_back_unseen
    hold_back = unseen if holds_back and isinstance(unseen, UnseenPool) else None
    build = unseen if holds_back and callable(unseen) and not isinstance(unseen, UnseenPool) else None
    frames = torch.arange(len(z_start), dtype=torch.long, device=device)
    history: list[float] = []
    tilts: list[float] | None = None
    stopped = False
    step = 0
    for step in range(cfg.max_steps):
        tuning = bool(decoder_params) and step >= cfg.finetune_start_steps
        probe_phase = optimise_probes and step >= cfg.probe_warmup_steps and (step % cycle) >= cfg.shape_steps
        # the decoder's gradients are used only in tuning shape steps: elsewhere autograd skips them
        _set_requires_grad(decoder_params, tuning and not probe_phase)
        if optimise_probes and candidates is not None and step == cfg.probe_warmup_steps:
            tilts = choose_foreshortening(prior, latent()[0], bank, probes, candidates, cfg, generator)
        if tuning and build is not None and (hold_back is None or (
                cfg.unseen_refresh_steps > 0 and (step - cfg.finetune_start_steps) % cfg.unseen_refresh_steps == 0)):
            hold_back = build(latent()[0].detach())
        n = point_count(step, cfg.points_ramp_steps, cfg.points_start, cfg.points_end)
        rc, target = bank.sample(frames, max(n // (bank.n_views * len(frames)), 1), generator)
        alpha = alpha_per_mm(cfg.alpha_start, cfg.alpha_end, cfg.sdf_unit_mm, step / max(cfg.anneal_steps, 1))
        with torch.set_grad_enabled(probe_phase):
            x = render_points(probes, rc, bank.spacing)
        z = latent()
        if probe_phase:
            z = z.detach()
        f = prior.sdf(z, x.reshape(len(frames), -1, 3)).reshape(target.shape)
        loss = render_loss(f, target, alpha, cfg.dice_weight)
        if probe_phase:
            loss = loss + cfg.probe_prior_weight * probe_penalty(probes, cfg)
        else:
            loss = loss + cfg.prior_weight * latent.mahalanobis(z)
            if tuning and hold_back is not None:
                loss = loss + cfg.unseen_anchor_weight * hold_back.penalty(prior, z[0], cfg.unseen_anchor_points,
                                                                           generator)
        opt = probe_opt if probe_phase else shape_opt
        opt.lr_scale = cosine_factor(step, cfg.lr_decay_steps, cfg.lr_floor)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        value = float(loss.detach())
        history.append(value)
        if not probe_phase and step >= cfg.anneal_steps and stopper.update(step, value):
            stopped = True
            break
        if control is not None and step % 25 == 0:
            control.report(step / cfg.max_steps, step, cfg.max_steps)
            if step % 100 == 0:
                control.check()
    _set_requires_grad(decoder_params, False)
    with torch.no_grad():
        z_final = latent()[0].detach().clone()
    if tilts is None:
        tilts = [float(w) for w in probes.fs.detach()]
    return AnchorFit(z_final, probes, prior, step + 1, stopped, time.perf_counter() - start, history, tilts)


def _set_requires_grad(params: Sequence[nn.Parameter], flag: bool) -> None:
    for p in params:
        if p.requires_grad != flag:
            p.requires_grad_(flag)
