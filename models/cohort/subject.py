"""A synthetic subject: phenotype, shape and motion parameters drawn deterministically from a seed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from models.cohort.motion import CardiacCycle, MotionParams, build_cycle, solve_radial_fraction
from models.cohort.phenotypes import draw_phenotype_params
from models.cohort.shape_model import EDShape, ShapeParams, build_ed_shape
from models.cohort.template import DEFAULT_TEMPLATE, Template
from models.cohort.version import GENERATOR_VERSION


class Stream(IntEnum):
    """Independent random streams of one case (so changing e.g. the frame count or SDF sample
    counts never changes the subject's anatomy)."""

    SUBJECT = 1
    VIEWS = 2
    CORRUPTION = 3
    SDF = 4
    BMODE = 5


def stream_rng(seed: int, stream: Stream) -> np.random.Generator:
    """The generator of ``stream`` for case ``seed``."""
    if seed < 0:
        raise ValueError("seeds must be non-negative")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream)]))


@dataclass(frozen=True)
class Subject:
    """One synthetic subject. ``motion.radial_fraction`` is already solved for ``motion.ef_target``."""

    seed: int
    phenotype: str
    shape: ShapeParams
    motion: MotionParams
    territory: str | None = None
    affected_segments: tuple[int, ...] = ()
    generator_version: str = GENERATOR_VERSION

    def ed_shape(self, template: Template = DEFAULT_TEMPLATE) -> EDShape:
        """The end-diastolic cavity (watertight, canonical frame, volume = EDV exactly)."""
        return build_ed_shape(self.shape, template)

    def cycle(self, n_frames: int, fps: float | None = None, template: Template = DEFAULT_TEMPLATE) -> CardiacCycle:
        """One full cardiac cycle at ``n_frames`` frames (frame 0 = ED; see ``motion.build_cycle``)."""
        return build_cycle(self.ed_shape(template), self.motion, n_frames, fps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "phenotype": self.phenotype,
            "territory": self.territory,
            "affected_segments": list(self.affected_segments),
            "shape": self.shape.to_dict(),
            "motion": self.motion.to_dict(),
            "generator_version": self.generator_version,
        }


def generate_subject(seed: int, phenotype: str | None = None, template: Template = DEFAULT_TEMPLATE) -> Subject:
    """Draw the subject of ``seed`` (phenotype drawn from the seed unless forced) and solve its
    radial contraction for the target EF. Deterministic: same seed → identical parameters."""
    draw = draw_phenotype_params(stream_rng(seed, Stream.SUBJECT), phenotype)
    k = solve_radial_fraction(build_ed_shape(draw.shape, template), draw.motion)
    return Subject(
        seed=int(seed),
        phenotype=draw.phenotype,
        shape=draw.shape,
        motion=dataclasses.replace(draw.motion, radial_fraction=k),
        territory=draw.territory,
        affected_segments=draw.affected_segments,
    )
