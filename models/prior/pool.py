"""The training pool: SDF samples and simulated grid masks of many shapes, built once and cached.

Building is the expensive part of training (exact SDFs, mesh slicing); the pool is therefore
computed once per (source version, pool settings, seeds) and stored as ``.npz`` under a cache
directory outside git. Training then only indexes arrays.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from models.geometry.frames import VIEW_NAMES
from models.prior.config import PriorConfig, TrainConfig
from models.prior.data import ShapeSource, spread_frames
from models.prior.grid import mask_to_grid

logger = logging.getLogger(__name__)

N_CYCLE_FRAMES = 20
"""Frames the cycle is sampled at before ``frames_per_subject`` of them are kept."""
POOL_FORMAT = "echo4d-prior-pool/1"


@dataclass(frozen=True)
class Pool:
    """S shapes: points (S, P, 3) float32 mm, sdf (S, P) float32 mm, masks (S, K, V, Hg, Wg) uint8
    (grid coverage × 255, K perturbed renditions per view), subject (S,), frame (S,), volume_ml (S,)."""

    points: NDArray[np.float32]
    sdf: NDArray[np.float32]
    masks: NDArray[np.uint8]
    subject: NDArray[np.int64]
    frame: NDArray[np.int64]
    volume_ml: NDArray[np.float64]

    @property
    def n_shapes(self) -> int:
        return int(self.points.shape[0])

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, points=self.points, sdf=self.sdf, masks=self.masks, subject=self.subject,
                 frame=self.frame, volume_ml=self.volume_ml)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Pool:
        with np.load(path) as d:
            return cls(d["points"], d["sdf"], d["masks"], d["subject"], d["frame"], d["volume_ml"])


def pool_key(source: ShapeSource, cfg: TrainConfig, seeds: Sequence[int]) -> str:
    """Content key of a pool: changes whenever anything that changes its arrays changes."""
    p: PriorConfig = cfg.prior
    doc = {
        "format": POOL_FORMAT, "source": source.name, "version": source.version, "seeds": list(seeds),
        "frames": cfg.frames_per_subject, "variants": cfg.mask_variants, "strength": cfg.perturbation_strength,
        "points": cfg.points_per_shape, "near": cfg.near_fraction, "corruption": cfg.corruption_prob,
        "grid": [list(p.grid_shape), p.grid_spacing_mm], "seed": cfg.seed,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def shape_masks(source: ShapeSource, shape: object, rng: np.random.Generator, cfg: TrainConfig,
                nominal_first: bool) -> NDArray[np.uint8]:
    """(K, V, Hg, Wg) uint8 grid masks of one shape: K perturbed (and sometimes corrupted) renditions."""
    hg, wg = cfg.prior.grid_shape
    out = np.zeros((cfg.mask_variants, len(VIEW_NAMES), hg, wg), dtype=np.uint8)
    for k in range(cfg.mask_variants):
        for v, view in enumerate(VIEW_NAMES):
            strength = 0.0 if (nominal_first and k == 0) else cfg.perturbation_strength * float(rng.uniform(0.3, 1.0))
            corrupt = bool(rng.random() < cfg.corruption_prob) and not (nominal_first and k == 0)
            img = source.view(shape, view, rng, strength, corrupt)
            out[k, v] = np.round(mask_to_grid(img.mask, img.spacing_mm, cfg.prior) * 255.0).astype(np.uint8)
    return out


def subject_pool(source: ShapeSource, cfg: TrainConfig, seed: int) -> Pool:
    """The pool rows of one subject (deterministic in ``cfg.seed`` and ``seed``)."""
    pts, sdfs, masks, frames, vols = [], [], [], [], []
    rng = np.random.default_rng([cfg.seed, int(seed), 7])
    sub = source.subject(int(seed), N_CYCLE_FRAMES)
    for f in spread_frames(len(sub.shapes), cfg.frames_per_subject, (sub.ed_frame, sub.es_frame)):
        shape = sub.shapes[f]
        p, s = source.sdf_samples(shape, rng, cfg.points_per_shape, cfg.near_fraction)
        pts.append(p)
        sdfs.append(s)
        masks.append(shape_masks(source, shape, rng, cfg, nominal_first=False))
        frames.append(f)
        vols.append(source.volume_ml(shape))
    return Pool(np.stack(pts), np.stack(sdfs), np.stack(masks), np.full(len(frames), int(seed), dtype=np.int64),
                np.asarray(frames, dtype=np.int64), np.asarray(vols, dtype=np.float64))


def concatenate(parts: Sequence[Pool]) -> Pool:
    return Pool(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Pool)))


def build_pool(source: ShapeSource, cfg: TrainConfig, seeds: Sequence[int],
               progress: Callable[[int, int], None] | None = None) -> Pool:
    """Compute the pool for subjects ``seeds`` (``frames_per_subject`` frames each, ED and ES included),
    in ``cfg.pool_workers`` processes; the result does not depend on the worker count."""
    parts: list[Pool] = []
    if cfg.pool_workers > 1 and len(seeds) > 1:
        ctx = multiprocessing.get_context("spawn")  # no fork after torch threads exist
        with ProcessPoolExecutor(cfg.pool_workers, mp_context=ctx) as ex:
            for i, part in enumerate(ex.map(subject_pool, [source] * len(seeds), [cfg] * len(seeds), seeds)):
                parts.append(part)
                if progress is not None:
                    progress(i + 1, len(seeds))
    else:
        for i, seed in enumerate(seeds):
            parts.append(subject_pool(source, cfg, seed))
            if progress is not None:
                progress(i + 1, len(seeds))
    return concatenate(parts)


def cached_pool(source: ShapeSource, cfg: TrainConfig, seeds: Sequence[int], cache_dir: Path | None,
                progress: Callable[[int, int], None] | None = None) -> Pool:
    """:func:`build_pool`, reusing ``cache_dir/pool-<key>.npz`` when present (cache_dir None → no cache)."""
    if cache_dir is None:
        return build_pool(source, cfg, seeds, progress)
    path = Path(cache_dir) / f"pool-{source.name}-{pool_key(source, cfg, seeds)}.npz"
    if path.is_file():
        logger.info("reusing cached training pool %s", path.name)
        return Pool.load(path)
    pool = build_pool(source, cfg, seeds, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    pool.save(path)
    return pool
