"""Realism check: global LV metrics of a real 4D case vs the synthetic cohort's distribution.

Metrics (all from meshes in the canonical frame, ED and ES with vertex correspondence):

* EDV, ESV (mL, exact mesh volumes) and EF (%);
* long-axis length L (mm): apex (origin) → mitral centre at ED;
* sphericity index SI = D_eq / L with D_eq = sqrt(6 · EDV / (π · L)), the short-axis diameter
  of the prolate ellipsoid with the cavity's volume and length;
* wall-motion amplitude (mm): area-weighted mean over the ED surface of the radial
  displacement ED → ES, i.e. the decrease of the distance to the long axis (z).

The cohort side samples subjects (cheap: ED mesh + the c = 1 ES mesh, no views, no SDF).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from models.cohort.motion import deform, motion_field
from models.cohort.subject import generate_subject
from models.geometry.mesh import Mesh, mesh_volume_ml

FloatArray = NDArray[np.float64]
METRIC_NAMES: Final[tuple[str, ...]] = ("edv_ml", "esv_ml", "ef_percent", "length_mm", "sphericity", "wall_motion_mm")
REALISM_SEED_OFFSET: Final[int] = 500_000
"""Subjects for the realism statistics use training seeds from here (disjoint from the test split)."""


@dataclass(frozen=True)
class LVMetrics:
    edv_ml: float
    esv_ml: float
    ef_percent: float
    length_mm: float
    sphericity: float
    wall_motion_mm: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def vertex_areas(mesh: Mesh) -> FloatArray:
    """Per-vertex area (N,): one third of the area of each incident face (mm²)."""
    tri = mesh.triangles
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    out = np.zeros(len(mesh.vertices))
    np.add.at(out, mesh.faces.ravel(), np.repeat(area / 3.0, 3))
    return out


def lv_metrics(ed: Mesh, es: Mesh, length_mm: float) -> LVMetrics:
    """Metrics of a cavity given its ED and ES meshes (same topology) in the canonical frame."""
    if ed.faces.shape != es.faces.shape or ed.vertices.shape != es.vertices.shape:
        raise ValueError("ED and ES meshes must share their topology")
    edv, esv = mesh_volume_ml(ed), mesh_volume_ml(es)
    d_eq = math.sqrt(6.0 * edv * 1000.0 / (math.pi * length_mm))
    w = vertex_areas(ed)
    r_ed = np.hypot(ed.vertices[:, 0], ed.vertices[:, 1])
    r_es = np.hypot(es.vertices[:, 0], es.vertices[:, 1])
    return LVMetrics(
        edv_ml=edv,
        esv_ml=esv,
        ef_percent=100.0 * (1.0 - esv / edv),
        length_mm=float(length_mm),
        sphericity=d_eq / length_mm,
        wall_motion_mm=float(np.sum(w * (r_ed - r_es)) / np.sum(w)),
    )


def subject_metrics(seed: int) -> LVMetrics:
    """Metrics of cohort subject ``seed`` (ES = full contraction c = 1)."""
    s = generate_subject(seed)
    ed = s.ed_shape()
    es = Mesh(deform(ed, motion_field(ed, s.motion), s.motion, 1.0), ed.template.faces)
    return lv_metrics(ed.mesh, es, s.shape.length_mm)


def cohort_metrics(seeds: Iterable[int]) -> dict[str, FloatArray]:
    """Metric columns (name → (n,)) over the subjects of ``seeds``."""
    rows = [subject_metrics(s).to_dict() for s in seeds]
    return {k: np.array([r[k] for r in rows]) for k in METRIC_NAMES}


def real_case_metrics(real: dict[str, Any]) -> LVMetrics:
    """Metrics of the real case as returned by ``models.geometry.canonical.load_real_lv_4d``."""
    v, f = real["vertices"], real["faces"]
    ed, es = int(real["ed_frame"]), int(real["es_frame"])
    length = float(np.linalg.norm(real["mitral_centre"]))
    return lv_metrics(Mesh(v[ed], f), Mesh(v[es], f), length)


@dataclass(frozen=True)
class Coverage:
    """Where one real metric falls in the cohort distribution."""

    name: str
    real: float
    p01: float
    p50: float
    p99: float
    percentile: float

    @property
    def inside(self) -> bool:
        return self.p01 <= self.real <= self.p99


def coverage(real: LVMetrics, cohort: dict[str, FloatArray]) -> list[Coverage]:
    """Per metric: the real value, the cohort's 1st/50th/99th percentiles and its rank."""
    out = []
    for name in METRIC_NAMES:
        col = np.asarray(cohort[name])
        value = float(getattr(real, name))
        p01, p50, p99 = (float(x) for x in np.percentile(col, [1, 50, 99]))
        out.append(Coverage(name, value, p01, p50, p99, 100.0 * float((col < value).mean())))
    return out
