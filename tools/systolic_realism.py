"""Systolic realism check for docs/results.md: how the real 4D LV (biv-me patient 1) contracts level by level,
against the cohort's subjects (a check only: nothing is fitted to it).

    .venv/bin/python tools/systolic_realism.py [N] [PATH/TO/bivme_patient1_lv_endo.npz] > out.json

Per level f of the long axis (apex → mitral centre, each phase measured on its own: the base descends):
the short-axis section area at ES over the one at ED, and the ES section's equivalent radius over the ES
cavity's r_eq = √(6·ESV / (π·L_ES)) / 2; plus the long-axis shortening 1 − L_ES / L_ED and the EF. Cohort
subjects: training seeds 500 000 … 500 000 + N − 1 (``realism.REALISM_SEED_OFFSET``), default N = 200,
reported for all phenotypes and for the ``normal`` ones (the real case has EF 60 %).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from models.cohort.basal import basal_metrics, section
from models.cohort.realism import REALISM_SEED_OFFSET
from models.cohort.subject import generate_subject
from models.cohort.version import GENERATOR_VERSION
from models.geometry.canonical import load_real_lv_4d
from models.geometry.mesh import Mesh, mesh_volume_ml

DEFAULT_REAL = Path("../shared/data/real-lv-4d/biv-me-patient1/bivme_patient1_lv_endo.npz")
LEVELS = (0.2, 0.4, 0.6, 0.8, 0.9)


def _area(mesh: Mesh, z_mm: float) -> float:
    s = section(mesh, z_mm)
    return s.area_mm2 if s is not None else 0.0


def systolic_metrics(ed: Mesh, es: Mesh, length_mm: tuple[float, float]) -> dict[str, float]:
    """Level-wise contraction of one cavity whose apex is at z = 0 in both phases; ``length_mm`` is (ED, ES)."""
    out: dict[str, float] = {}
    es_radii = basal_metrics(es, length_mm[1], LEVELS).radius_profile  # section radius / r_eq of the ES cavity
    for f, radius in zip(LEVELS, es_radii, strict=True):
        a_ed = _area(ed, f * length_mm[0])
        out[f"ES/ED section area z={f}L"] = _area(es, f * length_mm[1]) / a_ed if a_ed > 0 else float("nan")
        out[f"ES radius z={f}L / r_eq"] = radius
    out["long-axis shortening"] = 1.0 - length_mm[1] / length_mm[0]
    out["EF"] = 1.0 - mesh_volume_ml(es) / mesh_volume_ml(ed)
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    real = load_real_lv_4d(Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_REAL)
    v, faces, ring, apex = real["vertices"], real["faces"], real["base_idx"], real["apex_index"]
    ed, es = int(real["ed_frame"]), int(real["es_frame"])
    lengths = tuple(float(np.linalg.norm(v[t, ring].mean(axis=0) - v[t, apex])) for t in (ed, es))
    ed_mesh, es_mesh = (Mesh(v[t] - np.array([0.0, 0.0, v[t, apex, 2]]), faces) for t in (ed, es))  # apex at z = 0
    real_row = systolic_metrics(ed_mesh, es_mesh, (lengths[0], lengths[1]))
    rows, phenotypes = [], []
    for seed in range(REALISM_SEED_OFFSET, REALISM_SEED_OFFSET + n):
        subject = generate_subject(seed)
        shape = subject.ed_shape()
        cycle = subject.cycle(20)
        t = shape.template
        base_ring = np.arange(t.wall_slice.start, t.wall_slice.stop).reshape(t.n_wall, t.n_phi)[-1]
        ls = tuple(float(cycle.vertices[k, base_ring, 2].mean()) for k in (cycle.ed_frame, cycle.es_frame))
        rows.append(systolic_metrics(cycle.mesh(cycle.ed_frame), cycle.mesh(cycle.es_frame), (ls[0], ls[1])))
        phenotypes.append(subject.phenotype)
    metrics: dict[str, object] = {}
    for name, value in real_row.items():
        for subset in ("all", "normal"):
            col = np.array([r[name] for r, p in zip(rows, phenotypes, strict=True) if subset in ("all", p)])
            p5, p50, p95 = (float(x) for x in np.percentile(col, [5, 50, 95]))
            metrics[f"{name} [{subset}]"] = {"real": round(value, 3), "p5": round(p5, 3), "p50": round(p50, 3),
                                             "p95": round(p95, 3), "rank": round(100 * float((col < value).mean()))}
    json.dump({"version": GENERATOR_VERSION, "n": n, "n_normal": phenotypes.count("normal"), "metrics": metrics},
              sys.stdout, indent=1)


if __name__ == "__main__":
    main()
