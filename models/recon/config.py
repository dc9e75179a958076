"""Reconstruction settings: one dataclass, three named profiles, ablation flags.

* ``paper`` — the reference schedule (§3.1): 1,500 anchor steps alternating shape:probe 8:2,
  2,000 motion steps with one random frame each, 4,096 points per step, α 20 → 150, Adam
  5e-3 (probe), 5e-4 (latent, raw units), 1e-3 (velocity), λ_trans 0.5, λ_smooth 0.001 (both in
  the reference's unit-sphere SDF units: ``MotionConfig.loss_unit_mm`` = 50 mm).
* ``default`` — the same code with a schedule tuned for speed at equal accuracy: whitened
  latent steps, half the points per step (2,048: measured as accurate as a 1,536→4,096
  coarse-to-fine ramp at 2.4× less time), early stopping on loss plateaus (patience 100 of
  at most 800 anchor steps, 50 of at most 300 motion steps: the earlier 30-of-300 and
  25-of-150 stopped before convergence, seen-view Dice 0.968 vs 0.987), a shape-only
  warm-up and a weak prior on the probe residuals, a cosine learning-rate decay, the
  decoder's last two linear layers fine-tuned with the latent and held back where no view
  looks (:mod:`models.recon.unseen_anchor`; without it dilated ventricles grew outside the
  imaging fans, EDV +50 mL), all frames rendered together each motion step (transport on 6
  random frame pairs), per-frame latents warm-started from the fitted ED latent plus the
  encoder's frame-to-frame change. The choice is measured in docs/results.md ("Tuning").
  Session 4 (docs/results.md, "Session 4"): the pose model for real probes — base-anchored
  initial poses, an explicit foreshortening tilt per view (σ 15°) with a multi-start, per-axis
  priors, the soft gauge (measured better than anchoring A4C or the longest view), decoder
  fine-tuning from step 200 with the unseen pool rebuilt every 100 steps. Session 9: every
  vertex projected onto its frame's surface to within 0.02 mm (at most 8 Newton steps; the
  earlier two steps left the systolic meshes 2 mL large on the real LV). The temporal penalty
  (``motion.temporal_weight``) stays off: the tuning split's best weight (100: |EF| error 2.04 →
  1.53 points) over-smoothed the real LV's sharper end-systole (|EF| 2.0 → 4.5, EF low in
  every draw; docs/results.md, "Session 9"). Session 10: after the motion fit stops, 50 more
  steps with the learning rates on a cosine to 0.03× (the per-frame volume jitter 0.035 →
  0.011), and the foreshortening tilt prior σ 7.5° instead of 15° (about 12 mm at a 90 mm
  ventricle: the clinical 4–15 mm; the looser prior over-attributed foreshortening): tuning
  split |EF| 1.89 → 1.51, |EDV| 5.5 → 3.6 mL (docs/results.md, "Session 10"). Session 11: both
  early stoppers track their best from ``min_steps`` on (a lucky first sample had ended motion fits
  at step 50 whose loss was still falling): tuning |EF| 1.51 → 1.43, real LV 1.83 → 1.75, neutral
  on the 100 test cases. Session 13: the shape prior retrained on 1,000 cohort-2.3 subjects × 3 phases
  (#14 item 4; the earlier one had 80 cohort-1.0 subjects) and the latent prior ten times stronger
  (``prior_weight`` 1e-2 in both stages, 1e-3 before): test split ED MAE 1.02 → 0.81 mm, Hausdorff
  8.3 → 5.2 mm, EF, EDV and ESV errors within 5 % of before or better; real LV EF error below
  Simpson's (docs/results.md, "Session 13"). Session 17: the anchor stage of a sequence fits the
  end-systolic frame beside ED under the same probes (``anchor.joint_es``), so the probe poses explain the
  systolic masks too: test split |ESV| 3.72 → 3.69 mL, |EF| 1.105 → 1.067 points, real LV |EF| 0.54 → 0.41
  (docs/results.md, "Session 17").
* ``smoke`` — a few steps on a coarse grid, for tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from models.errors import ErrorCode, InputError
from models.profiles import PROFILES
from models.recon.anchor import AnchorConfig
from models.recon.motion import MotionConfig
from models.recon.rsa import MeshConfig

GAUGES = ("anchor", "longest", "soft")
ABLATIONS = ("none", "no-eca", "no-probe", "no-motion", "no-rsa", "no-dr")


@dataclass(frozen=True)
class ReconConfig:
    """Everything a reconstruction depends on (besides the study, the prior and the device).

    Flags: ``optimise_probes`` (False: probes stay at their initial poses), ``use_tto``
    (False: encoder only, no differentiable rendering at all), ``use_motion`` (False: each
    frame is fitted independently and its latent alone decides its shape; vertices follow
    by SDF projection only), ``use_rsa`` (False: marching cubes on every frame, volumes
    from those meshes), ``ed_only`` (3D: the ED frame only), ``views`` (a subset),
    ``n_frames`` (resample the common phase axis), ``pose_init`` (``base``, ``mask`` or
    ``nominal``: :mod:`models.recon.poses`).

    ``gauge``: ``anchor`` fixes the first view's probe (A4C when present) entirely; ``longest``
    fixes the probe of the view with the longest visible cavity (the least foreshortened);
    ``soft`` leaves every probe free and relies on the probe prior (``anchor.probe_prior_weight``)
    and the canonical shape prior to pin the frame down.

    ``sector_half_angle_deg``: pixels outside the apical fan (apex at row 0, centre column)
    are unobserved, not background — a cavity cut by the fan edge must not shrink the shape.
    They are never sampled and do not count in the fit scores. ``None``: every pixel observed.
    """

    profile: str = "default"
    seed: int = 0
    anchor: AnchorConfig = field(default_factory=AnchorConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    mesh: MeshConfig = field(default_factory=MeshConfig)
    views: tuple[str, ...] | None = None
    n_frames: int | None = None
    pose_init: str = "base"
    gauge: str = "soft"
    optimise_probes: bool = True
    use_tto: bool = True
    use_motion: bool = True
    use_rsa: bool = True
    ed_only: bool = False
    boundary_sigma_mm: float = 3.0
    surface_seed_points: int = 2048
    sector_half_angle_deg: float | None = 40.0

    @classmethod
    def from_profile(cls, name: str, **overrides: Any) -> ReconConfig:
        """The named profile (``default``, ``paper``, ``smoke``) with top-level ``overrides``."""
        if name == "paper":
            cfg = cls(profile="paper", mesh=MeshConfig(grid_mm=1.0, projection_iterations=1))
        elif name == "default":
            cfg = cls(
                profile="default",
                anchor=AnchorConfig(
                    max_steps=800, min_steps=120, lr_latent=0.1, latent_lr_in_std=True, lr_probe=5e-3,
                    prior_weight=1e-2, probe_prior_weight=0.05, probe_warmup_steps=40, lr_decay_steps=700, lr_floor=0.1,
                    probe_sigma_fs_deg=7.5, foreshortening_probe_steps=20,
                    finetune_start_steps=200, unseen_refresh_steps=100,
                    finetune_layers=2, lr_decoder=2e-4, unseen_anchor_weight=0.5,
                    points_start=2048, points_end=2048, points_ramp_steps=0, anneal_steps=150,
                    patience=100, rel_tol=5e-3, joint_es=True,
                ),
                motion=MotionConfig(
                    steps=300, min_steps=40, frames_per_step=0, points_per_frame=256, transport_points=128,
                    transport_pairs=6,
                    smooth_points=256, lr_latent=0.1, latent_lr_in_std=True, warm_start="delta", prior_weight=1e-2,
                    patience=50, rel_tol=2e-3, loss_unit_mm=1.0, decay_steps=50, lr_floor=0.03,
                ),
                mesh=MeshConfig(grid_mm=2.0, projection_iterations=8, projection_tol_mm=0.02),
            )
        elif name == "smoke":
            cfg = cls(
                profile="smoke",
                anchor=AnchorConfig(
                    max_steps=40, min_steps=40, lr_latent=0.05, latent_lr_in_std=True, points_start=768,
                    probe_prior_weight=0.01,
                    points_end=768, anneal_steps=30,
                ),
                motion=MotionConfig(
                    steps=20, min_steps=20, frames_per_step=0, points_per_frame=384, transport_points=128,
                    smooth_points=64, lr_latent=0.05, latent_lr_in_std=True, warm_start="delta", loss_unit_mm=1.0,
                ),
                mesh=MeshConfig(grid_mm=3.0, projection_iterations=2),
                surface_seed_points=512,
            )
        else:
            raise InputError(f"unknown profile {name!r}; expected one of {', '.join(PROFILES)}",
                             code=ErrorCode.VALIDATION_FAILED, field="profile")
        return dataclasses.replace(cfg, **overrides) if overrides else cfg

    def with_ablation(self, ablation: str) -> ReconConfig:
        """This config with one ablation switched on (``no-eca`` needs a different prior, not a flag)."""
        if ablation in ("none", "no-eca"):
            return self
        if ablation == "no-probe":
            return dataclasses.replace(self, optimise_probes=False)
        if ablation == "no-motion":
            return dataclasses.replace(self, use_motion=False)
        if ablation == "no-rsa":
            return dataclasses.replace(self, use_rsa=False)
        if ablation == "no-dr":
            return dataclasses.replace(self, use_tto=False)
        raise InputError(f"unknown ablation {ablation!r}; expected one of {', '.join(ABLATIONS)}",
                         code=ErrorCode.VALIDATION_FAILED, field="ablation")

    def with_overrides(self, overrides: Sequence[tuple[str, str]]) -> ReconConfig:
        """This config with ``(dotted.name, text)`` settings replaced, e.g.
        ``("anchor.lr_decoder", "0")`` (numbers and booleans parsed by the field's type)."""
        cfg: ReconConfig = self
        for name, text in overrides:
            head, _, leaf = name.rpartition(".")
            section: Any = getattr(cfg, head) if head in ("anchor", "motion", "mesh") else cfg
            known = {f.name for f in dataclasses.fields(section)}
            if (head and section is cfg) or leaf not in known or leaf in ("anchor", "motion", "mesh"):
                raise InputError(f"unknown setting {name!r}", code=ErrorCode.VALIDATION_FAILED, field="set")
            section = dataclasses.replace(section, **{leaf: _parse_like(getattr(section, leaf), text, name)})
            cfg = dataclasses.replace(cfg, **{head: section}) if head else section
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (stored in the result's extras and the report)."""
        d = dataclasses.asdict(self)
        d["views"] = list(self.views) if self.views is not None else None
        return d


def _parse_like(current: Any, text: str, name: str) -> Any:
    """``text`` parsed as the type of ``current`` (bool, int, float, str; None → int, else float)."""
    try:
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if isinstance(current, int):
            return int(text)
        if current is None:
            return int(text) if text.lstrip("+-").isdigit() else float(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, str):
            return text
    except ValueError:
        pass
    raise InputError(f"setting {name!r} cannot take the value {text!r}", code=ErrorCode.VALIDATION_FAILED,
                     field="set")
