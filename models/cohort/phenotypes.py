"""Phenotype priors: how a subject's shape and motion parameters are drawn.

Five phenotypes with fixed prevalences in the generated cohort:

=====================  ======  ===========  ===========  =========  ==========================
phenotype              share   EDV (mL)     SI           EF (%)     regional wall motion
=====================  ======  ===========  ===========  =========  ==========================
normal                 0.30    LN(125,0.2)  0.58 ± 0.05  55–72      all ≈ 1
                               70–220
dcm (dilated, low EF)  0.20    170–300      0.72 ± 0.05  10–35      global (small k), blunt
hypertrophic (small)   0.15    55–100       0.52 ± 0.04  62–75      all ≈ 1, septal bulge
apical_aneurysm        0.10    110–240      0.62 ± 0.05  20–40      13–17 dyskinetic (< 0),
                                                                    7, 8 hypokinetic, bulge
regional_hypokinesia   0.25    90–210       0.60 ± 0.05  28–55      LAD / RCA / LCX segments
                                                                    hypo- to akinetic
=====================  ======  ===========  ===========  =========  ==========================

SI is the sphericity index D_eq / L (``shape_model``); long-axis shortening, twist and the
systolic fraction (0.28–0.40, rising with heart rate 55–95 bpm, 65–100 for DCM) are drawn per
phenotype too (see the code). The apical gradient of radial contraction γ (cohort-2.3,
``motion``) is N(0.15, 0.10) clipped to ±0.5 for every phenotype: apex/base contraction ratio
(1 + γ)/(1 − γ) ≈ 1.35 at the mean, the base-to-apex rise of endocardial circumferential
shortening in normal hearts (quoted from memory; not fitted to any case). Every random number is
drawn in a fixed order whatever the phenotype, so a seed maps to one subject independently of later
code paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from models.cohort.motion import MAX_APICAL_GRADIENT, MotionParams
from models.cohort.segments import CORONARY_TERRITORIES, N_SEGMENTS
from models.cohort.shape_model import BASAL_MODES, PROFILE_MODES, SHAPE_MODES, ShapeParams

N_V1_MODES: Final[int] = 19
"""z-scores drawn in cohort-1.0's order (its 19 local modes, trefoil_s3 included and now discarded)."""
_V1_KEPT: Final[tuple[int, ...]] = tuple(i for i in range(N_V1_MODES) if i != 6)  # 6 = trefoil_s3

PHENOTYPES: Final[tuple[str, ...]] = ("normal", "dcm", "hypertrophic", "apical_aneurysm", "regional_hypokinesia")
PHENOTYPE_WEIGHTS: Final[tuple[float, ...]] = (0.30, 0.20, 0.15, 0.10, 0.25)
APICAL_GRADIENT_MEAN: Final[float] = 0.15
APICAL_GRADIENT_SD: Final[float] = 0.10


@dataclass(frozen=True)
class PhenotypeDraw:
    """What a phenotype prior produced for one subject."""

    phenotype: str
    shape: ShapeParams
    motion: MotionParams
    territory: str | None
    affected_segments: tuple[int, ...]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def draw_phenotype_params(rng: np.random.Generator, phenotype: str | None = None) -> PhenotypeDraw:
    """Draw one subject's shape and motion parameters (phenotype drawn too unless given)."""
    # Fixed-order draws: phenotype, 19 z-scores, 12 uniforms, 17 jitters, 17 picks, 2 normals, then
    # (cohort-2.0) the basal modes' z-scores, then (cohort-2.2) the radius-profile mode's, then
    # (cohort-2.3) the apical gradient's: every older parameter of a seed is unchanged.
    pick = int(rng.choice(len(PHENOTYPES), p=np.asarray(PHENOTYPE_WEIGHTS)))
    name = phenotype if phenotype is not None else PHENOTYPES[pick]
    if name not in PHENOTYPES:
        raise ValueError(f"unknown phenotype {name!r}; expected one of {', '.join(PHENOTYPES)}")
    z_v1 = rng.standard_normal(N_V1_MODES)
    u = rng.uniform(0.0, 1.0, size=12)
    jitter = rng.uniform(-1.0, 1.0, size=N_SEGMENTS)
    picks = rng.uniform(0.0, 1.0, size=N_SEGMENTS)
    g = np.clip(rng.standard_normal(2), -2.5, 2.5)  # EDV (log-normal), sphericity
    z_basal = rng.standard_normal(len(BASAL_MODES))
    z = np.concatenate([z_v1[list(_V1_KEPT)], z_basal, rng.standard_normal(len(PROFILE_MODES))])
    assert len(z) == len(SHAPE_MODES)
    gradient = float(np.clip(APICAL_GRADIENT_MEAN + APICAL_GRADIENT_SD * rng.standard_normal(),
                             -MAX_APICAL_GRADIENT, MAX_APICAL_GRADIENT))

    def sphericity(mean: float, sd: float, lo: float, hi: float) -> float:
        return float(np.clip(mean + sd * g[1], lo, hi))

    def lerp(i: int, lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(u[i])

    seg = 1.0 + 0.08 * jitter  # normal wall motion, ±8 %
    offsets: dict[str, float] = {}
    territory: str | None = None
    affected: tuple[int, ...] = ()
    twist_scale = 1.0
    if name == "normal":
        edv = float(np.clip(125.0 * np.exp(0.2 * g[0]), 70.0, 220.0))
        si = sphericity(0.58, 0.05, 0.48, 0.70)
        ef, ls = lerp(2, 55.0, 72.0), lerp(3, 0.12, 0.18)
    elif name == "dcm":
        edv = lerp(0, 170.0, 300.0)
        si = sphericity(0.72, 0.05, 0.62, 0.86)
        ef, ls = lerp(2, 10.0, 35.0), lerp(3, 0.03, 0.09)
        twist_scale = 0.35
        offsets = {"pointedness": -0.15, "mid_waist": 0.03}
    elif name == "hypertrophic":
        edv = lerp(0, 55.0, 100.0)
        si = sphericity(0.52, 0.04, 0.44, 0.62)
        ef, ls = lerp(2, 62.0, 75.0), lerp(3, 0.08, 0.13)
        twist_scale = 1.2
        offsets = {"septal_flattening": 0.08, "pointedness": 0.1}
    elif name == "apical_aneurysm":
        edv = lerp(0, 110.0, 240.0)
        si = sphericity(0.62, 0.05, 0.52, 0.74)
        ef, ls = lerp(2, 20.0, 40.0), lerp(3, 0.06, 0.11)
        twist_scale = 0.5
        offsets = {"apical_bulge": lerp(4, 0.2, 0.35), "pointedness": -0.15}
        affected = (7, 8, 13, 14, 15, 16, 17)
        for s_ in (13, 14, 15, 16, 17):
            seg[s_ - 1] = -0.1 - 0.5 * float(picks[s_ - 1])
        for s_ in (7, 8):
            seg[s_ - 1] = 0.4 + 0.4 * float(picks[s_ - 1])
    else:  # regional_hypokinesia
        edv = lerp(0, 90.0, 210.0)
        si = sphericity(0.60, 0.05, 0.50, 0.72)
        ef, ls = lerp(2, 28.0, 55.0), lerp(3, 0.07, 0.13)
        twist_scale = 0.7
        names = sorted(CORONARY_TERRITORIES)
        territory = names[min(int(u[5] * len(names)), len(names) - 1)]
        segs = CORONARY_TERRITORIES[territory]
        chosen = [s_ for s_ in segs if picks[s_ - 1] < 0.85] or [segs[0]]
        affected = tuple(chosen)
        for s_ in chosen:
            seg[s_ - 1] = -0.05 + 0.6 * float(u[6] * 0.5 + 0.5 * abs(jitter[s_ - 1]))
    hr_lo, hr_hi = (65.0, 100.0) if name == "dcm" else (55.0, 95.0)
    hr = lerp(7, hr_lo, hr_hi)
    alpha = float(np.clip(0.33 + 0.0025 * (hr - 70.0) + 0.02 * (u[8] * 2 - 1), 0.28, 0.40))
    twist_apex = -twist_scale * lerp(9, 6.0, 12.0)
    twist_base = twist_scale * lerp(10, 3.0, 7.0)
    shape = ShapeParams.from_zscores(edv, si, z, offsets)
    motion = MotionParams(
        ef_target=ef,
        long_shortening=ls,
        twist_apex_deg=twist_apex,
        twist_base_deg=twist_base,
        segment_motion=tuple(float(v) for v in seg),
        systole_fraction=alpha,
        heart_rate_bpm=hr,
        apical_gradient=gradient,
    )
    return PhenotypeDraw(name, shape, motion, territory, affected)
