"""Training pairs (B-mode frame, LV mask) for the segmenter, letterboxed to the network size.

``cohort`` source: a synthetic subject (``models.cohort.subject.generate_subject``) and one
cycle of meshes; a random frame and apical view under a random probe perturbation
(``simulate_view``), at a random image shape and depth (so the LV fills 35–65 % of the depth,
as in real apical views), with the other three chambers drawn around it (most A4C samples,
some others: the network must learn they are not the LV), rendered to B-mode by
``models.cohort.bmode.synthesize_bmode``. Subjects come from training seeds only (never the
frozen test split): training from ``TRAIN_SEED_OFFSET``, validation from ``VAL_SEED_OFFSET``.

``blobs`` source: elliptic dark cavities in a bright speckled wall (numpy only, fast) for
smoke tests and as a fallback.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from models.segment.letterbox import letterbox

TRAIN_SEED_OFFSET: Final = 700_000
VAL_SEED_OFFSET: Final = 800_000
MIN_MASK_PIXELS: Final = 40
FRAMES_PER_CYCLE: Final = 8
Source = Literal["cohort", "blobs", "site"]  # site: a site's labelled frames (models.segment.site_data)
Simulator = Literal["classic", "physics"]


@dataclass(frozen=True)
class DataConfig:
    """How many pairs, from which generator, at which network size and acquisition settings."""

    size: int = 128
    n_train: int = 3000
    n_val: int = 240
    samples_per_subject: int = 6
    source: Source = "cohort"
    depth_range_mm: tuple[float, float] = (140.0, 250.0)  # image depth (rows × spacing), like real apical views
    shapes: tuple[tuple[int, int], ...] = ((224, 224), (240, 320), (256, 224), (208, 272))
    perturbation_strength: float = 1.0
    seed: int = 0
    simulator: Simulator = "physics"  # models.cohort.echo_physics (or the classic models.cohort.bmode)
    classic_fraction: float = 0.0  # with the physics simulator: this share of pairs from the classic one

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["depth_range_mm"] = list(self.depth_range_mm)
        d["shapes"] = [list(s) for s in self.shapes]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataConfig:
        return cls(**{**d, "depth_range_mm": tuple(d["depth_range_mm"]),
                      "shapes": tuple(tuple(s) for s in d["shapes"]), "simulator": d.get("simulator", "classic")})


Pairs = tuple[NDArray[np.uint8], NDArray[np.uint8]]


def _other_chambers(lv: NDArray[np.uint8], spacing_mm: tuple[float, float], rng: np.random.Generator
                    ) -> NDArray[np.bool_]:
    """Dark non-LV cavities of an apical four-chamber picture: a right ventricle beside the LV
    (shorter and narrower, across a 8–13 mm septum, on the screen-left/septal side), a right atrium
    below it and a left atrium below the LV base. The network must learn that they are not the LV."""
    h, w = lv.shape
    sr, sc = spacing_mm
    rows = np.flatnonzero(lv.any(axis=1))
    cols = np.flatnonzero(lv.any(axis=0))
    if rows.size < 5 or cols.size < 5:
        return np.zeros(lv.shape, dtype=bool)
    base_r, centre_c = float(rows.max()), float(cols.mean())
    half_w = 0.5 * (cols.max() - cols.min() + 1)
    k_len, k_wid = rng.uniform(0.7, 0.9), rng.uniform(0.6, 0.9)
    septum_px = rng.uniform(8.0, 13.0) / sc
    rv_centre = centre_c - (half_w + septum_px + k_wid * half_w)
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    src_r = base_r + (rr - base_r) / k_len
    src_c = centre_c + (cc - rv_centre) / k_wid
    rv = ndimage.map_coordinates(lv.astype(np.float32), [src_r, src_c], order=0, cval=0.0) > 0.5
    d_lv = ndimage.distance_transform_edt(lv == 0, sampling=(sr, sc))
    rv &= d_lv > septum_px * sc
    out = rv.copy()
    for centre, half in ((rv_centre, k_wid * half_w), (centre_c, half_w)):  # right, then left atrium
        ry, rx = rng.uniform(14.0, 22.0) / sr, half * rng.uniform(0.9, 1.2)
        cy = base_r + ry + rng.uniform(2.0, 5.0) / sr
        out |= ((rr - cy) / ry) ** 2 + ((cc - centre) / rx) ** 2 <= 1.0
    out &= d_lv > 3.0
    return np.asarray(out)


def render_pair(mask: NDArray[np.uint8], view: str, spacing_mm: tuple[float, float], cfg: DataConfig,
                rng: np.random.Generator) -> Pairs:
    """One (image, label) pair (H, W) of an LV ``mask`` under ``cfg.simulator``: the physics renderer
    (random acquisition, anatomy around the LV, burned-in screen furniture; the label is cut to the
    rendered fan) or the classic one (extra chambers drawn around the LV here)."""
    if cfg.simulator == "physics" and not rng.uniform() < cfg.classic_fraction:
        from models.cohort.echo_physics import burn_in, render_bmode, sample_acquisition
        from models.cohort.echo_scene import echogenicity_map
        from models.geometry.sector import sector_mask

        acq = sample_acquisition(rng)
        echo = echogenicity_map(mask, spacing_mm, rng, view, with_chambers=bool(rng.uniform() < 0.9))
        image = render_bmode(echo, spacing_mm, acq, rng)
        if rng.uniform() < 0.6:
            image = burn_in(image, rng)
        label = (mask * sector_mask(mask.shape, spacing_mm, acq.half_angle_deg)).astype(np.uint8)
        return image, label
    from models.cohort.bmode import synthesize_bmode

    scene = mask
    if rng.uniform() < (0.85 if view == "A4C" else 0.3):
        scene = (mask.astype(bool) | _other_chambers(mask, spacing_mm, rng)).astype(np.uint8)
    return synthesize_bmode(scene, rng, spacing_mm), mask


def subject_samples(seed: int, cfg: DataConfig, n: int, frames: tuple[str, ...] = ()
                    ) -> list[tuple[NDArray[np.uint8], NDArray[np.uint8], str, str]]:
    """Letterboxed (image, mask, view, phase) samples of subject ``seed`` (deterministic in seed and
    cfg). ``frames=()``: ``n`` random frames and views; ``frames=("ED", "ES")``: those phases in
    every view (``n`` ignored). ``phase`` is "ED", "ES" or "mid"."""
    from models.cohort.simulator import sample_perturbation, simulate_view
    from models.cohort.subject import generate_subject
    from models.geometry.frames import VIEW_NAMES

    rng = np.random.default_rng(np.random.SeedSequence([seed, cfg.seed, 0x5E6]))
    subject = generate_subject(seed)
    cycle = subject.cycle(FRAMES_PER_CYCLE)
    phase_of = {0: "ED", cycle.es_frame: "ES"}
    if frames:
        index = {"ED": 0, "ES": cycle.es_frame}
        jobs = [(index[p], v) for v in VIEW_NAMES for p in frames]
    else:
        jobs = []
    out: list[tuple[NDArray[np.uint8], NDArray[np.uint8], str, str]] = []
    tries, target = 0, len(jobs) if jobs else n
    while len(out) < target and tries < 4 * max(target, 1):
        tries += 1
        if jobs:
            frame, view = jobs[len(out)]
        else:
            frame, view = int(rng.integers(cycle.n_frames)), VIEW_NAMES[int(rng.integers(len(VIEW_NAMES)))]
        shape = cfg.shapes[int(rng.integers(len(cfg.shapes)))]
        sp = float(rng.uniform(*cfg.depth_range_mm)) / shape[0]
        pert = sample_perturbation(rng, cfg.perturbation_strength, subject.shape.length_mm)
        mask, _ = simulate_view(cycle.mesh(frame), view, pert, shape, (sp, sp))
        if int(mask.sum()) < MIN_MASK_PIXELS:
            continue
        image, mask = render_pair(mask, view, (sp, sp), cfg, rng)
        if rng.uniform() < 0.5:  # vendors differ on which side the septum is shown
            image, mask = image[:, ::-1], mask[:, ::-1]
        out.append((letterbox(image, cfg.size)[0], letterbox(mask, cfg.size, nearest=True)[0], view,
                    phase_of.get(frame, "mid")))
    return out


def _cohort_subject_pairs(seed: int, cfg: DataConfig, n: int) -> Pairs:
    """``n`` letterboxed (image, mask) pairs of subject ``seed`` (deterministic in seed and cfg)."""
    samples = subject_samples(seed, cfg, n)
    if not samples:
        return np.zeros((0, cfg.size, cfg.size), np.uint8), np.zeros((0, cfg.size, cfg.size), np.uint8)
    return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


def blob_pair(rng: np.random.Generator, size: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """One synthetic (image, mask) pair: a dark ellipse in a bright speckled ring, in a fan."""
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float64)
    cy, cx = rng.uniform(0.3, 0.55) * size, rng.uniform(0.35, 0.65) * size
    a, b = rng.uniform(0.15, 0.3) * size, rng.uniform(0.08, 0.16) * size
    theta = rng.uniform(-0.3, 0.3)
    y, x = rr - cy, cc - cx
    u, v = y * math.cos(theta) + x * math.sin(theta), -y * math.sin(theta) + x * math.cos(theta)
    d = (u / a) ** 2 + (v / b) ** 2
    mask = (d <= 1).astype(np.uint8)
    wall = (d > 1) & (d <= 1.6)
    echo = np.where(mask == 1, 0.05, np.where(wall, 0.9, 0.35))
    speckle = np.abs(ndimage.gaussian_filter(rng.standard_normal((size, size)), 1.0)) * 2.5
    img = ndimage.gaussian_filter(echo, 1.0) * speckle
    fan = np.abs(np.arctan2(cc - size / 2, rr + 1e-6)) <= math.radians(40)
    img = np.clip(img * fan * 255, 0, 255).astype(np.uint8)
    return img, mask * fan.astype(np.uint8)


def make_pairs(cfg: DataConfig, split: Literal["train", "val"], workers: int = 1) -> Pairs:
    """All pairs of ``split``: images (N, S, S) uint8, masks (N, S, S) uint8 in {0, 1}."""
    n = cfg.n_train if split == "train" else cfg.n_val
    if cfg.source == "blobs":
        rng = np.random.default_rng([cfg.seed, 0 if split == "train" else 1])
        pairs = [blob_pair(rng, cfg.size) for _ in range(n)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    offset = TRAIN_SEED_OFFSET if split == "train" else VAL_SEED_OFFSET
    per = cfg.samples_per_subject
    seeds = [offset + cfg.seed * 10_000 + k for k in range(math.ceil(n / per))]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            chunks = list(pool.map(_cohort_subject_pairs, seeds, [cfg] * len(seeds), [per] * len(seeds)))
    else:
        chunks = [_cohort_subject_pairs(s, cfg, per) for s in seeds]
    images = np.concatenate([c[0] for c in chunks])[:n]
    masks = np.concatenate([c[1] for c in chunks])[:n]
    return images, masks
