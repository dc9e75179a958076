"""4D motion: per-frame latents refined by a BiLSTM and a neural velocity field (reference §2.3–2.4).

Trained per study, with the probes fitted at ED as the start (held, or refined with every frame's
masks: ``probe_steps`` > 0, below):

* per-frame latents ``z_t`` (initialised from the encoder, or — the default warm start —
  from the fitted ED latent plus the encoder's frame-to-frame change) are refined by a
  bidirectional LSTM, ``z̃ = z + σ ⊙ BiLSTM(z)`` (zero-initialised head, so ``z̃ = z`` at first);
* each step renders a random subset of frames against their masks (BCE + 0.5·Dice), plus
  ``temporal_weight·(T/T₀)⁴`` × the latents' mean squared second difference over the T frames
  in training standard deviations (:meth:`LatentParam.curvature`: frame-to-frame jitter of
  the shapes). The factor makes it a discrete ∫‖z''(phase)‖²: a smooth cycle costs the same
  at any frame count, the weight means what it meant at ``temporal_reference_frames`` T₀ = 20
  (the cohort's, where it was tuned), and a 4-frame study is hardly smoothed at all;
* the velocity field ``v(γ(x), γ(t))`` (MLP with sinusoidal encodings, displacement in mm
  per frame step) is trained by the bidirectional transport loss
  ``E[w(x_t)·f(z̃_{t+1}, x_t + v(x_t, t))²] + E[w(x_{t+1})·f(z̃_t, x_{t+1} − v(x_{t+1}, t))²]``
  (the backward term inverts the same step t → t+1 to first order; evaluating the field at
  t+1 there asked one field to be two different displacements), ``w = exp(−|f|)``, on points
  near each frame's surface, plus ``λ_smooth·E[‖v‖²]`` on uniform samples. Both terms and
  ``w`` are computed in units of ``loss_unit_mm`` (the reference's unit-sphere SDF is
  ``sdf_unit_mm`` = 50 mm, which the ``paper`` profile uses so that its λ's mean what the
  reference's do; the ``default`` profile was tuned with 1 mm). The latents are detached in the
  transport term: the masks decide the shapes, the velocity field follows them (it only
  provides vertex correspondence for RSA).
* with ``probe_steps`` > 0, every cycle of ``shape_steps`` steps is followed by ``probe_steps`` steps
  that update only the probes (render loss over all frames, shapes held, plus the anchor stage's
  probe prior). A probe is one physical pose for the whole cine, so the systolic masks constrain it
  too: the ED fit alone leaves pose errors that the ED shape absorbs and that show at end-systole
  (docs/results.md, "Session 16"). The reference freezes the probes here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from models.recon.anchor import LatentParam
from models.recon.control import StageControl
from models.recon.optim import Adam
from models.recon.rendering import (
    PixelBank,
    ProbeParams,
    alpha_per_mm,
    pixels_to_points,
    render_loss,
    render_points,
)
from models.recon.schedule import DecayAfterStop, EarlyStopper
from models.recon.shape_model import ReconPrior


@dataclass(frozen=True)
class MotionConfig:
    """Schedule of the motion stage. ``frames_per_step <= 0`` renders every frame at every step;
    ``transport_pairs > 0`` draws that many of the rendered frames' (t, t+1) pairs for the
    transport loss each step (``<= 0``: all of them). Once the fit stops (a loss plateau or
    ``steps``), ``decay_steps`` more steps take every learning rate down to ``lr_floor`` on a
    cosine (:class:`~models.recon.schedule.DecayAfterStop`; 0: none, the reference): at a constant
    rate the last step's noise stays in the per-frame shapes (frame-to-frame volume jitter).
    ``probe_steps`` > 0 refines the probes in ``probe_steps`` of every ``shape_steps + probe_steps``
    steps (Adam, ``lr_probe`` rad for rotations and ``lr_probe · sdf_unit_mm`` mm for shifts, as the
    anchor stage); 0 holds them (the reference)."""

    steps: int = 2000
    min_steps: int = 2000
    frames_per_step: int = 1
    points_per_frame: int = 4096
    transport_points: int = 1024
    transport_pairs: int = 0
    smooth_points: int = 512
    lr_latent: float = 5e-4
    latent_lr_in_std: bool = False
    lr_velocity: float = 1e-3
    lr_lstm: float = 1e-3
    lambda_transport: float = 0.5
    lambda_smooth: float = 1e-3
    alpha: float = 150.0
    sdf_unit_mm: float = 50.0
    dice_weight: float = 0.5
    prior_weight: float = 1e-3
    temporal_weight: float = 0.0
    temporal_reference_frames: int = 20
    warm_start: str = "encoder"
    use_lstm: bool = True
    use_velocity: bool = True
    velocity_width: int = 128
    velocity_freqs_x: int = 6
    velocity_freqs_t: int = 4
    lstm_hidden: int = 64
    surface_jitter_mm: float = 2.0
    loss_unit_mm: float = 50.0
    patience: int = 0
    rel_tol: float = 2e-3
    decay_steps: int = 0
    lr_floor: float = 1.0
    probe_steps: int = 0
    shape_steps: int = 8
    lr_probe: float = 5e-3


def positional_encoding(x: Tensor, n_freqs: int) -> Tensor:
    """γ(x) = (x, sin(2^k π x), cos(2^k π x))_{k<n}: (..., D) → (..., D·(1 + 2n))."""
    freqs = (2.0 ** torch.arange(n_freqs, device=x.device, dtype=x.dtype)) * math.pi
    xf = x[..., None] * freqs  # (..., D, n)
    enc = torch.cat([torch.sin(xf), torch.cos(xf)], -1).flatten(-2)
    out: Tensor = torch.cat([x, enc], -1)
    return out


class VelocityField(nn.Module):
    """``v(γ(x/scale), γ(t))`` → displacement (..., 3) mm per frame step; a 4-layer MLP.

    ``x`` (..., 3) mm, ``t`` (...,) normalised phase in [0, 1). Output layer zero-initialised.
    """

    def __init__(self, width: int = 128, freqs_x: int = 6, freqs_t: int = 4, scale_mm: float = 64.0) -> None:
        super().__init__()
        self.freqs_x, self.freqs_t, self.scale_mm = freqs_x, freqs_t, scale_mm
        d_in = 3 * (1 + 2 * freqs_x) + (1 + 2 * freqs_t)
        self.net = nn.Sequential(
            nn.Linear(d_in, width), nn.Softplus(beta=10.0),
            nn.Linear(width, width), nn.Softplus(beta=10.0),
            nn.Linear(width, width), nn.Softplus(beta=10.0),
            nn.Linear(width, 3),
        )
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        gx = positional_encoding(x / self.scale_mm, self.freqs_x)
        gt = positional_encoding(t[..., None].expand(*x.shape[:-1], 1), self.freqs_t)
        out: Tensor = self.net(torch.cat([gx, gt], -1))
        return out


class LatentRefiner(nn.Module):
    """Bidirectional LSTM over the per-frame latents: ``z̃ = z + σ ⊙ head(BiLSTM(ẑ))``.

    ``z`` (T, L) → ``z̃`` (T, L); the LSTM sees whitened latents ``ẑ = (z − μ)/σ``; the head is
    zero-initialised so the refiner starts as the identity.
    """

    mean: Tensor
    std: Tensor

    def __init__(self, latent_dim: int, hidden: int, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone().clamp_min(1e-6))
        self.lstm = nn.LSTM(latent_dim, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, latent_dim)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, z: Tensor) -> Tensor:
        white = (z - self.mean) / self.std
        h, _ = self.lstm(white[None])
        out: Tensor = z + self.std * self.head(h[0])
        return out


@dataclass
class MotionFit:
    """Refined latents ``z_tilde`` (T, L), the velocity field (None when disabled), history."""

    z_tilde: Tensor
    velocity: VelocityField | None
    steps: int
    seconds: float
    loss_history: list[float] = field(default_factory=list)


def project_to_surface(prior: ReconPrior, z: Tensor, x: Tensor, iterations: int = 3,
                       max_step_mm: float = 10.0, tol_mm: float = 0.0) -> Tensor:
    """Move points ``x`` (B, N, 3) onto the zero level set of ``f(z (B, L), ·)`` by Newton steps
    ``x ← x − f·∇f/‖∇f‖²`` (each at most ``max_step_mm`` long), at most ``iterations`` times; with
    ``tol_mm > 0`` a point stops moving (and costs nothing more) once its first-order distance
    ``|f|/‖∇f‖`` to the level set is within ``tol_mm``. Returns (B, N, 3), detached.

    For an exact SDF (‖∇f‖ = 1) this is the reference's ``x − f·∇f/‖∇f‖``; the decoder's gradient
    is not of unit length, and the reference's step then leaves a residual of ``f·(1 − ‖∇f‖)`` per
    iteration (two iterations left the real LV's systolic vertices up to 0.5 mm off their surfaces)."""
    x = x.detach()
    if tol_mm <= 0:
        for _ in range(iterations):
            x = x - _newton_step(prior, z, x, max_step_mm)[1]
        return x
    out = []
    for b in range(x.shape[0]):
        xb, active = x[b].clone(), torch.arange(x.shape[1], device=x.device)
        for _ in range(iterations):
            distance, step = _newton_step(prior, z[b: b + 1], xb[active][None], max_step_mm)
            moving = distance[0].abs() > tol_mm
            active = active[moving]
            if len(active) == 0:
                break
            xb[active] -= step[0][moving]
        out.append(xb)
    return torch.stack(out)


MIN_GRADIENT_NORM = 0.2
"""Newton steps divide by ``max(‖∇f‖, this)``: near a critical point of ``f`` the step stays finite."""


def _newton_step(prior: ReconPrior, z: Tensor, x: Tensor, max_step_mm: float) -> tuple[Tensor, Tensor]:
    """The first-order signed distance ``f/‖∇f‖`` (B, N) from ``x`` (B, N, 3) to the zero level set
    of ``f(z, ·)`` and the Newton step to it (B, N, 3), its length clamped to ``max_step_mm``; detached."""
    with torch.enable_grad():
        xi = x.detach().clone().requires_grad_(True)
        f = prior.sdf(z.detach(), xi)
        (grad,) = torch.autograd.grad(f.sum(), xi)
    norm = grad.norm(dim=-1, keepdim=True).clamp_min(MIN_GRADIENT_NORM)
    distance = f.detach()[..., None] / norm
    return distance[..., 0], distance.clamp(-max_step_mm, max_step_mm) * grad / norm


def fit_motion(prior: ReconPrior, z_init: Tensor, bank: PixelBank, probes: ProbeParams, surface_seed: Tensor,
               bbox: tuple[Tensor, Tensor], cfg: MotionConfig, generator: torch.Generator,
               control: StageControl | None = None,
               probe_prior: Callable[[ProbeParams], Tensor] | None = None) -> MotionFit:
    """Fit per-frame latents, BiLSTM and velocity field to all frames of ``bank``.

    ``z_init`` (T, L) initial latents (frame 0 = ED); ``surface_seed`` (S, 3) mm points on the ED
    surface (transport samples start from them); ``bbox`` (lo (3,), hi (3,)) mm for uniform
    smoothness samples. The probes are held unless ``cfg.probe_steps`` > 0; then they are updated in
    place, with ``probe_prior(probes)`` (a scalar) added to their loss.
    """
    start = time.perf_counter()
    device = z_init.device
    n_frames = int(z_init.shape[0])
    fit_probes = cfg.probe_steps > 0 and bool(probes.free.any())
    cycle = cfg.shape_steps + cfg.probe_steps
    probe_opt = probes.optimiser(cfg.lr_probe, cfg.sdf_unit_mm)
    latents = LatentParam(z_init, prior.latent_mean, prior.latent_std, cfg.latent_lr_in_std).to(device)
    refiner = LatentRefiner(prior.latent_dim, cfg.lstm_hidden, prior.latent_mean, prior.latent_std).to(device)
    velocity = VelocityField(cfg.velocity_width, cfg.velocity_freqs_x, cfg.velocity_freqs_t).to(device)
    groups: list[tuple[list[Tensor], float]] = [([latents.value], cfg.lr_latent)]
    if cfg.use_lstm:
        groups.append((list(refiner.parameters()), cfg.lr_lstm))
    if cfg.use_velocity:
        groups.append((list(velocity.parameters()), cfg.lr_velocity))
    opt = Adam(groups)
    alpha = alpha_per_mm(cfg.alpha, cfg.alpha, cfg.sdf_unit_mm, 1.0)
    temporal_weight = cfg.temporal_weight * (n_frames / cfg.temporal_reference_frames) ** 4
    times = torch.arange(n_frames, device=device, dtype=torch.float32) / n_frames

    def refined() -> Tensor:
        z: Tensor = latents()
        if cfg.use_lstm:
            z = refiner(z)
        return z

    # Points near every frame's surface: the ED surface projected onto each initial frame surface.
    surf = surface_seed[None].expand(n_frames, -1, -1)
    surf = project_to_surface(prior, z_init.detach(), surf, iterations=2)
    lo, hi = bbox
    schedule = DecayAfterStop(EarlyStopper(cfg.patience, cfg.rel_tol, cfg.min_steps), cfg.steps, cfg.decay_steps,
                              cfg.lr_floor)

    def held_poses() -> tuple[Tensor, Tensor, Tensor]:
        with torch.no_grad():
            return probes.transforms()

    poses = held_poses()
    history: list[float] = []
    step = 0
    n_views = bank.n_views
    for step in range(schedule.max_steps):
        if cfg.frames_per_step <= 0 or cfg.frames_per_step >= n_frames:
            frames = torch.arange(n_frames, device=device)
        else:
            frames = torch.randperm(n_frames, generator=generator, device=device)[: cfg.frames_per_step]
        rc, target = bank.sample(frames, max(cfg.points_per_frame // n_views, 1), generator)
        if fit_probes and (step % cycle) >= cfg.shape_steps:
            with torch.no_grad():
                z_held = refined()[frames]
            _probe_step(prior, z_held, probes, bank, rc, target, alpha, cfg.dice_weight, probe_prior, probe_opt,
                        schedule.factor(step))
        else:
            if fit_probes:
                poses = held_poses()
            z_all = refined()
            x = pixels_to_points(rc, bank.spacing, *poses)  # (B, V, n, 3)
            f = prior.sdf(z_all[frames], x.reshape(len(frames), -1, 3)).reshape(target.shape)
            loss = render_loss(f, target, alpha, cfg.dice_weight) + cfg.prior_weight * latents.mahalanobis(z_all)
            if temporal_weight > 0 and n_frames > 2:
                loss = loss + temporal_weight * latents.curvature(z_all)
            if cfg.use_velocity and n_frames > 1:
                loss = loss + _transport_terms(prior, velocity, z_all.detach(), surf, frames, times, lo, hi, cfg,
                                               generator)
            opt.lr_scale = schedule.factor(step)
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            value = float(loss.detach())
            history.append(value)
            if schedule.update(step, value):
                break
        if control is not None and step % 25 == 0:
            control.report(step / schedule.max_steps, step, schedule.max_steps)
            if step % 100 == 0:
                control.check()
    with torch.no_grad():
        z_tilde = refined().detach().clone()
    return MotionFit(z_tilde, velocity if cfg.use_velocity else None, step + 1, time.perf_counter() - start, history)


def _probe_step(prior: ReconPrior, z: Tensor, probes: ProbeParams, bank: PixelBank, rc: Tensor, target: Tensor,
                alpha: float, dice_weight: float, probe_prior: Callable[[ProbeParams], Tensor] | None, opt: Adam,
                lr_scale: float) -> None:
    """One update of the probes on the sampled pixels ``rc`` (B, V, n, 2) of B frames, their shapes ``z``
    (B, L) held: render loss plus ``probe_prior(probes)``."""
    x = render_points(probes, rc, bank.spacing)
    f = prior.sdf(z, x.reshape(len(z), -1, 3)).reshape(target.shape)
    loss = render_loss(f, target, alpha, dice_weight)
    if probe_prior is not None:
        loss = loss + probe_prior(probes)
    opt.lr_scale = lr_scale
    opt.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    opt.step()


def _transport_terms(prior: ReconPrior, velocity: VelocityField, z_all: Tensor, surf: Tensor, frames: Tensor,
                     times: Tensor, lo: Tensor, hi: Tensor, cfg: MotionConfig, generator: torch.Generator) -> Tensor:
    """λ_trans·(bidirectional transport) + λ_smooth·E‖v‖² for the pairs (t, t+1) with t in ``frames``."""
    n_frames = int(z_all.shape[0])
    t0 = frames[frames < n_frames - 1]
    if len(t0) == 0:
        t0 = frames.clamp_max(n_frames - 2)
    if 0 < cfg.transport_pairs < len(t0):
        t0 = t0[torch.randperm(len(t0), generator=generator, device=z_all.device)[: cfg.transport_pairs]]
    t1 = t0 + 1
    device = z_all.device
    n = cfg.transport_points

    def near(t: Tensor) -> Tensor:
        idx = torch.randint(0, surf.shape[1], (len(t), n), generator=generator, device=device)
        pts = torch.gather(surf[t], 1, idx[..., None].expand(-1, -1, 3))
        noise = torch.randn(pts.shape, generator=generator, device=device) * cfg.surface_jitter_mm
        return pts + noise

    x_a, x_b = near(t0), near(t1)
    unit = cfg.loss_unit_mm
    with torch.no_grad():
        w_a = torch.exp(-prior.sdf(z_all[t0], x_a).abs() / unit)
        w_b = torch.exp(-prior.sdf(z_all[t1], x_b).abs() / unit)
    step_t = times[t0][:, None].expand(-1, n)
    v_a = velocity(x_a, step_t)
    v_b = velocity(x_b, step_t)
    f_fwd = prior.sdf(z_all[t1], x_a + v_a) / unit
    f_bwd = prior.sdf(z_all[t0], x_b - v_b) / unit
    transport = (w_a * f_fwd**2).mean() + (w_b * f_bwd**2).mean()
    u = torch.rand((cfg.smooth_points, 3), generator=generator, device=device)
    xs = lo + (hi - lo) * u
    ts = torch.rand((cfg.smooth_points,), generator=generator, device=device)
    smooth = ((velocity(xs, ts) / unit) ** 2).sum(-1).mean()
    out: Tensor = cfg.lambda_transport * transport + cfg.lambda_smooth * smooth
    return out
