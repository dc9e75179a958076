"""Case generation: subject → cycle → simulated views (clean + corrupted) → SDF samples.

``generate_case(seed, cfg)`` is a pure function of the seed and the config (every random
stream is derived from the seed, see ``subject.Stream``); ``models.cohort.writer.write_case`` turns a
:class:`Case` into files. Same seed and config → byte-identical arrays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.cohort.bmode import synthesize_bmode_clip
from models.cohort.corruption import DEFAULT_SEVERITY, corrupt_masks
from models.cohort.motion import CardiacCycle
from models.cohort.sdf_samples import default_bounds, sample_sdf
from models.cohort.simulator import NOMINAL, ProbePerturbation, sample_perturbation, simulate_sequence
from models.cohort.splits import TEST_SPLIT_SEEDS, frozen_test_seeds, training_seeds
from models.cohort.subject import Stream, Subject, generate_subject, stream_rng
from models.cohort.version import GENERATOR_VERSION
from models.geometry.frames import DEFAULT_IMAGE_SHAPE, DEFAULT_PIXEL_SPACING_MM, VIEW_NAMES, ImagePlane
from models.geometry.sector import DEFAULT_HALF_ANGLE_DEG

MIN_MASK_PIXELS = 150
"""A simulated view must show at least this many cavity pixels in every frame."""
MAX_POSE_TRIES = 20


@dataclass(frozen=True)
class CohortConfig:
    """Everything that shapes a generated case besides its seed (saved in truth.json)."""

    n_frames: int = 20
    image_shape: tuple[int, int] = DEFAULT_IMAGE_SHAPE
    spacing_mm: tuple[float, float] = DEFAULT_PIXEL_SPACING_MM
    fps: float | None = None  # None: the clip spans exactly one cycle (fps = n_frames / RR)
    views: tuple[str, ...] = VIEW_NAMES
    perturbation_strength: float = 1.0
    corruption_severity: float = DEFAULT_SEVERITY
    sector_half_angle_deg: float = DEFAULT_HALF_ANGLE_DEG
    sdf: bool = True
    sdf_near: int = 3072
    sdf_uniform: int = 1024
    sdf_margin_mm: float = 10.0
    bmode: bool = False
    preview: bool = True

    def __post_init__(self) -> None:
        if not 2 <= self.n_frames <= 512:
            raise ValueError("n_frames must be within 2–512")
        if any(v not in VIEW_NAMES for v in self.views) or not self.views:
            raise ValueError(f"views must be a non-empty subset of {VIEW_NAMES}")
        if not 0.0 <= self.perturbation_strength <= 1.0 or not 0.0 <= self.corruption_severity <= 1.0:
            raise ValueError("perturbation_strength and corruption_severity must be within [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        d["spacing_mm"] = list(self.spacing_mm)
        d["views"] = list(self.views)
        return d


@dataclass(frozen=True)
class Case:
    """One generated case. Mask dicts are keyed by view name, each (T, H, W) uint8."""

    seed: int
    config: CohortConfig
    subject: Subject
    cycle: CardiacCycle
    fps: float
    perturbations: dict[str, ProbePerturbation]
    planes: dict[str, ImagePlane]
    masks_clean: dict[str, NDArray[np.uint8]]
    masks_noisy: dict[str, NDArray[np.uint8]]
    bmode: dict[str, NDArray[np.uint8]] | None = None
    sdf_points: NDArray[np.float32] | None = None  # (T, N, 3) mm
    sdf_values: NDArray[np.float32] | None = None  # (T, N) mm, negative inside
    sdf_bounds: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
    generator_version: str = field(default=GENERATOR_VERSION)

    @property
    def split(self) -> str:
        return "test" if self.seed in TEST_SPLIT_SEEDS else "train"

    def summary(self) -> dict[str, Any]:
        """Per-case line of the cohort index."""
        return {
            "seed": self.seed,
            "split": self.split,
            "phenotype": self.subject.phenotype,
            "edv_ml": round(self.cycle.edv_ml, 3),
            "esv_ml": round(self.cycle.esv_ml, 3),
            "ef_percent": round(self.cycle.ef_percent, 3),
            "n_frames": self.cycle.n_frames,
        }


def _simulate_views(
    subject: Subject, cycle: CardiacCycle, cfg: CohortConfig, rng: np.random.Generator
) -> tuple[dict[str, ProbePerturbation], dict[str, ImagePlane], dict[str, NDArray[np.uint8]]]:
    perts: dict[str, ProbePerturbation] = {}
    planes: dict[str, ImagePlane] = {}
    masks: dict[str, NDArray[np.uint8]] = {}
    length = subject.shape.length_mm
    for view in VIEW_NAMES:  # draw for all views, in order, so subsets see the same poses
        candidates = [sample_perturbation(rng, cfg.perturbation_strength, length) for _ in range(MAX_POSE_TRIES)]
        if view not in cfg.views:
            continue
        for pert in [*candidates, NOMINAL]:
            seq, plane = simulate_sequence(
                cycle.vertices, cycle.faces, view, pert, cfg.image_shape, cfg.spacing_mm, cfg.sector_half_angle_deg
            )
            if int(seq.reshape(len(seq), -1).sum(axis=1).min()) >= MIN_MASK_PIXELS:
                break
        perts[view], planes[view], masks[view] = pert, plane, seq
    return perts, planes, masks


def generate_case(seed: int, cfg: CohortConfig = CohortConfig()) -> Case:
    """Generate case ``seed``: subject, one cycle, clean and corrupted masks per view, optional
    B-mode cines and SDF samples. Deterministic in (seed, cfg)."""
    subject = generate_subject(seed)
    cycle = subject.cycle(cfg.n_frames, cfg.fps)
    fps = cfg.fps if cfg.fps is not None else cfg.n_frames / subject.motion.rr_s
    perts, planes, clean = _simulate_views(subject, cycle, cfg, stream_rng(seed, Stream.VIEWS))
    rng_c = stream_rng(seed, Stream.CORRUPTION)
    noisy = {v: corrupt_masks(clean[v], rng_c, cfg.corruption_severity) for v in cfg.views}
    bmode = None
    if cfg.bmode:
        rng_b = stream_rng(seed, Stream.BMODE)
        bmode = {
            v: synthesize_bmode_clip(clean[v], rng_b, cfg.spacing_mm, cfg.sector_half_angle_deg) for v in cfg.views
        }
    points = values = None
    bounds = None
    if cfg.sdf:
        rng_s = stream_rng(seed, Stream.SDF)
        bounds = default_bounds(cycle.vertices, cfg.sdf_margin_mm)
        samples = [
            sample_sdf(cycle.mesh(i), rng_s, cfg.sdf_near, cfg.sdf_uniform, bounds) for i in range(cycle.n_frames)
        ]
        points = np.stack([p for p, _ in samples])
        values = np.stack([d for _, d in samples])
    return Case(
        seed=int(seed),
        config=cfg,
        subject=subject,
        cycle=cycle,
        fps=float(fps),
        perturbations=perts,
        planes=planes,
        masks_clean=clean,
        masks_noisy=noisy,
        bmode=bmode,
        sdf_points=points,
        sdf_values=values,
        sdf_bounds=bounds,
    )


__all__ = [
    "TEST_SPLIT_SEEDS",
    "Case",
    "CohortConfig",
    "frozen_test_seeds",
    "generate_case",
    "generate_subject",
    "training_seeds",
]
