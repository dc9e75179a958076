"""Configuration of the shape prior (network) and of its training run.

Both dataclasses are plain data (no torch) and round-trip through ``to_dict``/``from_dict`` so
they can be stored inside a checkpoint and its JSON sidecar.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from models.errors import ErrorCode, ModelError

Activation = Literal["softplus", "silu", "relu"]
Strategy = Literal["joint", "two_stage"]
DataSource = Literal["ellipsoids", "cohort"]


def _from_dict(cls: type[Any], d: dict[str, Any]) -> Any:
    """Build dataclass ``cls`` from ``d``; unknown keys are an error, lists become tuples."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ModelError(f"{cls.__name__} has no field(s) {', '.join(unknown)}", code=ErrorCode.CHECKPOINT_INVALID)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return cls(**kwargs)


@dataclass(frozen=True)
class PriorConfig:
    """Architecture of the conditional SDF ``f(z, x)`` and of the Epipolar Mask Encoder.

    Coordinates are mm in the canonical LV frame; the decoder maps ``x`` to
    ``(x - sdf_center_mm) / sdf_scale_mm`` internally and returns mm.
    """

    latent_dim: int = 64
    # --- decoder (DeepSDF-style MLP)
    decoder_width: int = 128  # 6 × 128: best accuracy per CPU-second measured (docs/prior.md)
    decoder_depth: int = 6  # number of hidden layers
    decoder_skip_layer: int = 3  # hidden layer index that receives [h, input] again (0 = none)
    decoder_activation: Activation = "softplus"  # softplus(beta=100): smooth, twice differentiable
    fourier_features: int = 0  # Gaussian random Fourier features of x (0 = none; they hurt, measured)
    fourier_scale: float = 1.0  # std of the Fourier frequencies, in units of 1/normalised-coordinate
    fourier_seed: int = 1234
    sdf_scale_mm: float = 50.0  # coordinate normalisation
    sdf_center_mm: tuple[float, float, float] = (0.0, 0.0, 40.0)
    clamp_mm: float = 15.0  # L1 loss is taken on SDF values clamped to ±clamp_mm (DeepSDF)
    # --- encoder
    grid_shape: tuple[int, int] = (64, 64)  # (H, W) rows × cols of the network's mask grid
    grid_spacing_mm: float = 2.5  # isotropic spacing of that grid (area fractions keep sub-cell edges)
    encoder_channels: tuple[int, int, int, int] = (16, 32, 64, 128)  # stem, Φ1, Φ2 stage a, Φ2 stage b
    view_embedding: bool = True
    use_eca: bool = True
    eca_window_rows: int = 2  # ±rows of the ECA feature map (each row = 4 grid rows = 10 mm)
    eca_tau: float = 0.0  # softmax temperature; 0 → sqrt(channels)
    encoder_mlp_hidden: int = 256

    def __post_init__(self) -> None:
        h, w = self.grid_shape
        if h % 16 or w % 16:
            raise ModelError(f"grid_shape {self.grid_shape} must be multiples of 16", code=ErrorCode.CHECKPOINT_INVALID)
        if not 0 <= self.decoder_skip_layer < self.decoder_depth:
            raise ModelError("decoder_skip_layer must be in [0, decoder_depth)", code=ErrorCode.CHECKPOINT_INVALID)
        if self.latent_dim < 1 or self.decoder_width < 1 or self.sdf_scale_mm <= 0 or self.clamp_mm <= 0:
            raise ModelError("PriorConfig has a non-positive size or scale", code=ErrorCode.CHECKPOINT_INVALID)

    @property
    def eca_stride(self) -> int:
        """Down-sampling factor between the mask grid and the ECA feature map."""
        return 4

    @property
    def eca_window_mm(self) -> float:
        """Half-height of the epipolar window in mm."""
        return self.eca_window_rows * self.eca_stride * self.grid_spacing_mm

    @property
    def eca_temperature(self) -> float:
        return self.eca_tau if self.eca_tau > 0 else float(self.encoder_channels[1]) ** 0.5

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PriorConfig:
        cfg: PriorConfig = _from_dict(cls, d)
        return cfg

    def replace(self, **changes: Any) -> PriorConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TrainConfig:
    """A training run: data, schedule, losses. ``TrainConfig.profile("smoke"|"default")``."""

    prior: PriorConfig = field(default_factory=PriorConfig)
    seed: int = 0
    data_source: DataSource = "cohort"
    # --- data pool (precomputed once, cached outside git)
    n_subjects: int = 80
    frames_per_subject: int = 10  # frames kept per subject (spread over the cycle; ED and ES always)
    mask_variants: int = 3  # perturbed probe renditions per shape
    perturbation_strength: float = 1.0
    points_per_shape: int = 6144  # SDF samples stored per shape
    near_fraction: float = 0.8
    pool_workers: int = 2  # processes building the pool (the result does not depend on it)
    # --- schedule
    init_from: str = ""  # warm start: a shape-prior checkpoint (.pt) with the same PriorConfig ("" = random init)
    strategy: Strategy = "joint"
    steps: int = 7000
    autodecoder_steps: int = 0  # two_stage only: auto-decoder steps before the encoder stage
    batch_shapes: int = 16
    points_per_step: int = 256  # per shape → 4,096 points per step at 16 shapes
    lr_decoder: float = 1e-3
    lr_encoder: float = 1e-3
    lr_latent: float = 1e-3
    lr_decay_at: tuple[float, ...] = (0.6, 0.85)  # fractions of steps where lr ×= 0.3
    weight_decay: float = 0.0
    # --- losses
    latent_l2: float = 1e-4  # λ‖z‖² (reference Eq. 6)
    eikonal: float = 0.0  # weight of (‖∇f‖ − 1)² on uniform points (0 = off)
    # --- augmentation
    view_dropout: float = 0.5  # probability of dropping to a random non-empty strict subset
    corruption_prob: float = 0.5
    # --- bookkeeping
    eval_every: int = 1000
    n_val_subjects: int = 6
    checkpoint_every: int = 500
    threads: int = 2

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["prior"] = self.prior.to_dict()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        prior = PriorConfig.from_dict(d.pop("prior", {}))
        cfg: TrainConfig = _from_dict(cls, {**d})
        return dataclasses.replace(cfg, prior=prior)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def profile(cls, name: str) -> TrainConfig:
        """Named settings: ``smoke`` (tests, < 1 min, stand-in shapes) or ``default`` (~60 min CPU)."""
        if name == "default":
            return cls()
        if name == "smoke":
            tiny = PriorConfig(
                latent_dim=16,
                decoder_width=64,
                decoder_depth=3,
                decoder_skip_layer=2,
                grid_shape=(32, 32),
                grid_spacing_mm=5.0,
                encoder_channels=(8, 16, 16, 32),
                encoder_mlp_hidden=64,
            )
            return cls(
                prior=tiny,
                data_source="ellipsoids",
                n_subjects=12,
                frames_per_subject=2,
                mask_variants=1,
                points_per_shape=2048,
                steps=150,
                batch_shapes=8,
                points_per_step=256,
                lr_decoder=3e-3,
                lr_encoder=3e-3,
                eval_every=75,
                n_val_subjects=2,
                checkpoint_every=50,
                pool_workers=1,
            )
        raise ModelError(f"unknown training profile {name!r}; expected smoke or default", code=ErrorCode.INTERNAL)
