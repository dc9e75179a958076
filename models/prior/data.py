"""The ONE adapter between the shape prior and where its training shapes come from.

A :class:`ShapeSource` yields subjects (a list of frame shapes over one cardiac cycle), SDF
samples of a shape, simulated (perturbed, possibly corrupted) view masks of a shape, and its
ground-truth mesh. Two sources exist:

* ``"ellipsoids"`` — :class:`EllipsoidSource`, analytic stand-ins (smoke profile, tests);
* ``"cohort"`` — :class:`CohortSource`, the synthetic cohort of ``models.cohort``.

Everything else in ``models.prior`` (pool building, training, evaluation) only sees this
interface; switching data means changing :func:`make_source` (or ``TrainConfig.data_source``).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.geometry.frames import DEFAULT_IMAGE_SHAPE, DEFAULT_PIXEL_SPACING_MM, VIEW_NAMES
from models.geometry.mesh import Mesh, mesh_volume_ml

FloatArray = NDArray[np.float64]
UInt8Array = NDArray[np.uint8]

SDF_BOUNDS_MM: tuple[tuple[float, float, float], tuple[float, float, float]] = (
    (-50.0, -50.0, -15.0), (50.0, 50.0, 125.0))
"""Box (lo, hi) in the canonical frame where uniform SDF samples are drawn and meshes extracted."""
NEAR_SIGMAS_MM: tuple[float, float] = (1.0, 5.0)
"""Near-surface samples: surface points plus N(0, σ²) noise, half with each σ."""
MIN_MASK_PIXELS = 150
MAX_POSE_TRIES = 20


@dataclass(frozen=True)
class SubjectShapes:
    """One subject's cycle: opaque per-frame shapes (frame 0 = ED), ED and ES frame indices."""

    seed: int
    shapes: list[Any]
    ed_frame: int
    es_frame: int


@dataclass(frozen=True)
class EvalCase:
    """A held-out case for evaluation: per phase ("ed", "es") the ground-truth mesh and the view masks
    ``{view: (H, W) uint8}`` as the product would receive them, with their spacing (row, col) mm."""

    seed: int
    meshes: dict[str, Mesh]
    masks: dict[str, dict[str, UInt8Array]]
    spacing_mm: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class ViewImage:
    """A simulated view: mask (H, W) uint8 {0, 1}, row 0 at the probe, and its pixel spacing (row, col) mm."""

    mask: UInt8Array
    spacing_mm: tuple[float, float]


class ShapeSource(abc.ABC):
    """Where training and evaluation shapes come from (see the module docstring)."""

    name: str
    version: str

    @abc.abstractmethod
    def training_seeds(self, n: int) -> list[int]:
        """The first ``n`` training subject seeds (disjoint from the test split)."""

    @abc.abstractmethod
    def test_seeds(self) -> list[int]:
        """The frozen test split."""

    @abc.abstractmethod
    def subject(self, seed: int, n_frames: int) -> SubjectShapes:
        """Subject ``seed`` sampled at ``n_frames`` frames over one cycle."""

    @abc.abstractmethod
    def mesh(self, shape: Any) -> Mesh:
        """Ground-truth closed mesh of a shape (mm, canonical frame)."""

    @abc.abstractmethod
    def signed_distance(self, shape: Any, points: FloatArray) -> FloatArray:
        """Exact signed distance (N,) mm of points (N, 3), negative inside."""

    @abc.abstractmethod
    def view(self, shape: Any, view: str, rng: np.random.Generator | None, strength: float,
             corrupt: bool) -> ViewImage:
        """Simulated mask of ``view``; ``rng=None`` or ``strength=0`` → nominal probe pose."""

    def volume_ml(self, shape: Any) -> float:
        return mesh_volume_ml(self.mesh(shape))

    def eval_case(self, seed: int) -> EvalCase:
        """ED and ES of subject ``seed`` with perturbed-probe, corrupted masks drawn from the seed."""
        sub = self.subject(seed, 20)
        rng = np.random.default_rng([seed, 4242])
        meshes: dict[str, Mesh] = {}
        masks: dict[str, dict[str, UInt8Array]] = {}
        spacing: dict[str, tuple[float, float]] = {}
        for phase, f in (("ed", sub.ed_frame), ("es", sub.es_frame)):
            meshes[phase] = self.mesh(sub.shapes[f])
            masks[phase] = {}
            for view in VIEW_NAMES:
                img = self.view(sub.shapes[f], view, rng, 1.0, corrupt=True)
                masks[phase][view] = img.mask
                spacing[view] = img.spacing_mm
        return EvalCase(seed, meshes, masks, spacing)

    def sdf_samples(self, shape: Any, rng: np.random.Generator, n: int,
                    near_fraction: float) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``n`` points (n, 3) and their SDF (n,): near-surface (σ 1 and 5 mm) and uniform in SDF_BOUNDS_MM."""
        mesh = self.mesh(shape)
        n_near = round(n * near_fraction)
        tri = mesh.triangles
        area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        face = rng.choice(len(tri), size=n_near, p=area / area.sum())
        u, v = rng.random(n_near), rng.random(n_near)
        flip = u + v > 1
        u, v = np.where(flip, 1 - u, u), np.where(flip, 1 - v, v)
        surf = tri[face, 0] + u[:, None] * (tri[face, 1] - tri[face, 0]) + v[:, None] * (tri[face, 2] - tri[face, 0])
        sigma = np.where(np.arange(n_near) % 2 == 0, NEAR_SIGMAS_MM[0], NEAR_SIGMAS_MM[1])
        near = surf + rng.normal(size=(n_near, 3)) * sigma[:, None]
        lo, hi = (np.asarray(b) for b in SDF_BOUNDS_MM)
        uniform = lo + rng.random((n - n_near, 3)) * (hi - lo)
        pts = np.concatenate([near, uniform])
        sdf = self.signed_distance(shape, pts)
        return pts.astype(np.float32), sdf.astype(np.float32)


# ----------------------------------------------------------------------------- stand-in ellipsoids


class EllipsoidSource(ShapeSource):
    """Analytic LV-like ellipsoids (models.prior.standin): fast, exact, no cohort needed."""

    name = "ellipsoids"
    version = "standin-ellipsoids-1"
    image_shape: tuple[int, int] = (160, 160)
    spacing_mm: tuple[float, float] = (1.0, 1.0)

    def training_seeds(self, n: int) -> list[int]:
        return list(range(n))

    def test_seeds(self) -> list[int]:
        return list(range(900_000, 900_100))

    def subject(self, seed: int, n_frames: int) -> SubjectShapes:
        from models.prior.standin import cycle_frames, random_ellipsoid

        ed = random_ellipsoid(np.random.default_rng([seed, 1]))
        frames = cycle_frames(ed, n_frames)
        return SubjectShapes(seed, list(frames), 0, n_frames // 2)

    def mesh(self, shape: Any) -> Mesh:
        m: Mesh = shape.mesh(subdivisions=3)
        return m

    def volume_ml(self, shape: Any) -> float:
        return float(shape.volume_mm3) / 1000.0

    def signed_distance(self, shape: Any, points: FloatArray) -> FloatArray:
        out: FloatArray = shape.signed_distance(points)
        return out

    def view(self, shape: Any, view: str, rng: np.random.Generator | None, strength: float,
             corrupt: bool) -> ViewImage:
        from models.prior.standin import ellipsoid_view_mask, perturbed_plane

        plane = perturbed_plane(view, rng, strength, self.image_shape, self.spacing_mm)
        mask = ellipsoid_view_mask(shape, plane)
        if corrupt and rng is not None:
            from scipy import ndimage

            it = int(rng.integers(1, 3))
            op = ndimage.binary_dilation if rng.random() < 0.5 else ndimage.binary_erosion
            grown = op(mask.astype(bool), iterations=it)
            mask = grown.astype(np.uint8) if grown.any() else mask
        return ViewImage(mask, self.spacing_mm)


# ----------------------------------------------------------------------------- the synthetic cohort


class CohortSource(ShapeSource):
    """The synthetic cohort (models.cohort): SSM shapes with motion, exact slicing, perturbed probes."""

    name = "cohort"

    def __init__(self, image_shape: tuple[int, int] = DEFAULT_IMAGE_SHAPE,
                 spacing_mm: tuple[float, float] = DEFAULT_PIXEL_SPACING_MM) -> None:
        from models.cohort.version import GENERATOR_VERSION

        self.version = GENERATOR_VERSION
        self.image_shape = image_shape
        self.spacing = spacing_mm

    def training_seeds(self, n: int) -> list[int]:
        from models.cohort.splits import training_seeds

        return [int(s) for s in training_seeds(n)]

    def test_seeds(self) -> list[int]:
        from models.cohort.splits import TEST_SPLIT_SEEDS

        return [int(s) for s in TEST_SPLIT_SEEDS]

    def subject(self, seed: int, n_frames: int) -> SubjectShapes:
        from models.cohort.subject import generate_subject

        cycle = generate_subject(seed).cycle(n_frames)
        shapes = [Mesh(cycle.vertices[i], cycle.faces) for i in range(cycle.n_frames)]
        return SubjectShapes(seed, shapes, cycle.ed_frame, cycle.es_frame)

    def mesh(self, shape: Any) -> Mesh:
        assert isinstance(shape, Mesh)
        return shape

    def signed_distance(self, shape: Any, points: FloatArray) -> FloatArray:
        from models.geometry.sdf import MeshDistance

        return MeshDistance(self.mesh(shape)).signed_distance(points)

    def sdf_samples(self, shape: Any, rng: np.random.Generator, n: int,
                    near_fraction: float) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        from models.cohort.sdf_samples import sample_sdf

        n_near = round(n * near_fraction)
        return sample_sdf(self.mesh(shape), rng, n_near, n - n_near, SDF_BOUNDS_MM, NEAR_SIGMAS_MM)

    def view(self, shape: Any, view: str, rng: np.random.Generator | None, strength: float,
             corrupt: bool) -> ViewImage:
        from models.cohort.corruption import corrupt_masks
        from models.cohort.simulator import NOMINAL, sample_perturbation, simulate_view

        mesh = self.mesh(shape)
        length = float(mesh.vertices[:, 2].max())
        mask = np.zeros(self.image_shape, dtype=np.uint8)
        for _ in range(MAX_POSE_TRIES):  # like the cohort: redraw poses that barely cut the cavity
            pert = NOMINAL if rng is None or strength <= 0 else sample_perturbation(rng, min(strength, 1.0), length)
            mask, _plane = simulate_view(mesh, view, pert, self.image_shape, self.spacing)
            if int(mask.sum()) >= MIN_MASK_PIXELS:
                break
        else:
            mask, _plane = simulate_view(mesh, view, NOMINAL, self.image_shape, self.spacing)
        if corrupt and rng is not None:
            mask = corrupt_masks(mask[None], rng, float(rng.uniform(0.2, 0.8)))[0]
        return ViewImage(np.asarray(mask, dtype=np.uint8), self.spacing)

    def eval_case(self, seed: int) -> EvalCase:
        """The cohort's own case ``seed`` (``generate_case``): its corrupted ("noisy") masks at ED and ES."""
        from models.cohort.generate import CohortConfig, generate_case

        case = generate_case(seed, CohortConfig(sdf=False, bmode=False, preview=False))
        cyc = case.cycle
        phases = {"ed": cyc.ed_frame, "es": cyc.es_frame}
        spacing = tuple(float(v) for v in case.config.spacing_mm)
        return EvalCase(
            seed=seed,
            meshes={p: cyc.mesh(f) for p, f in phases.items()},
            masks={p: {v: case.masks_noisy[v][f] for v in case.config.views} for p, f in phases.items()},
            spacing_mm={v: (spacing[0], spacing[1]) for v in case.config.views},
        )


def make_source(name: str) -> ShapeSource:
    """The data source named by ``TrainConfig.data_source``."""
    if name == "ellipsoids":
        return EllipsoidSource()
    if name == "cohort":
        return CohortSource()
    raise ValueError(f"unknown data source {name!r}")


def spread_frames(n_cycle: int, k: int, must: Sequence[int]) -> list[int]:
    """``k`` frame indices evenly spread over a cycle of ``n_cycle`` frames, always including ``must``."""
    picks = {round(i * n_cycle / k) % n_cycle for i in range(k)}
    picks.update(int(m) for m in must)
    return sorted(picks)


ALL_SUBSETS: tuple[tuple[str, ...], ...] = (
    ("A4C", "A2C", "A3C"), ("A4C", "A2C"), ("A4C", "A3C"), ("A2C", "A3C"), ("A4C",), ("A2C",), ("A3C",),
)
"""Every non-empty subset of the views, in VIEW_NAMES order: 3 views, each pair, each single view."""
assert all(v in VIEW_NAMES for s in ALL_SUBSETS for v in s)
