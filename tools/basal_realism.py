"""Basal realism check for docs/results.md: the real 4D LV (biv-me patient 1, ED) against the cohort's
ED cavities, with the definitions of ``models.cohort.basal`` (a check only: nothing is fitted to it).

    .venv/bin/python tools/basal_realism.py [N] [PATH/TO/bivme_patient1_lv_endo.npz] > out.json

Cohort subjects: training seeds 500 000 … 500 000 + N − 1 (``realism.REALISM_SEED_OFFSET``), default N = 200.
Run it from an older checkout (``git archive``) with this file copied in to get the same figures for an
older generator version (the JSON records ``models.cohort.version.GENERATOR_VERSION``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.cohort.basal import PROFILE_FRACTIONS, BasalMetrics, basal_metrics
from models.cohort.realism import REALISM_SEED_OFFSET
from models.cohort.subject import generate_subject
from models.cohort.version import GENERATOR_VERSION
from models.geometry.canonical import load_real_lv_4d
from models.geometry.mesh import Mesh

DEFAULT_REAL = Path("../shared/data/real-lv-4d/biv-me-patient1/bivme_patient1_lv_endo.npz")
AORTO_MITRAL_AXIS_DEG = 60.0  # ≡ −120°: the minor axis of a D-shaped annulus


def near_axis(angle_deg: float, tol_deg: float = 30.0) -> bool:
    """Whether a minor-axis azimuth (mod 180°) lies within ``tol_deg`` of the aorto-mitral axis."""
    return abs(((angle_deg - AORTO_MITRAL_AXIS_DEG) + 90.0) % 180.0 - 90.0) <= tol_deg


def _profile_at(i: int) -> Callable[[BasalMetrics], float]:
    return lambda r: r.radius_profile[i]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    real = load_real_lv_4d(Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_REAL)
    ed = int(real["ed_frame"])
    rm = basal_metrics(Mesh(real["vertices"][ed], real["faces"]), float(np.linalg.norm(real["mitral_centre"])))
    rows: list[BasalMetrics] = []
    for seed in range(REALISM_SEED_OFFSET, REALISM_SEED_OFFSET + n):
        s = generate_subject(seed)
        rows.append(basal_metrics(s.ed_shape().mesh, s.shape.length_mm))
    scalar = {
        "eccentricity z=0.8L": lambda r: r.eccentricity_80,
        "eccentricity z=0.9L": lambda r: r.eccentricity_90,
        "reach above mitral centre (mm)": lambda r: r.above_mitral_mm,
        "volume above z=L (mL)": lambda r: r.above_mitral_ml,
    } | {f"radius z={p}L / (D_eq/2)": _profile_at(i) for i, p in enumerate(PROFILE_FRACTIONS)}
    out: dict[str, object] = {"version": GENERATOR_VERSION, "n": n, "metrics": {}}
    metrics: dict[str, object] = {}
    for name, f in scalar.items():
        col = np.array([f(r) for r in rows])
        v = float(f(rm))
        p1, p5, p50, p95, p99 = (float(x) for x in np.percentile(col, [1, 5, 50, 95, 99]))
        metrics[name] = {"real": v, "p1": p1, "p5": p5, "p50": p50, "p95": p95, "p99": p99,
                         "rank": 100.0 * float((col < v).mean())}
    for level, real_deg, get in (("0.8", rm.minor_axis_80_deg, lambda r: r.minor_axis_80_deg),
                                 ("0.9", rm.minor_axis_90_deg, lambda r: r.minor_axis_90_deg)):
        metrics[f"minor axis within 30 deg of the aorto-mitral axis, z={level}L"] = {
            "real_deg": real_deg, "real": near_axis(real_deg),
            "fraction": float(np.mean([near_axis(get(r)) for r in rows]))}
    metrics["azimuth of the highest point (deg)"] = {
        "real": rm.above_mitral_azimuth_deg, "p50": float(np.median([r.above_mitral_azimuth_deg for r in rows]))}
    out["metrics"] = metrics
    sys.stdout.write(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
