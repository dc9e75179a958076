"""Motion model: one full cardiac cycle of a cavity, ED at t = 0, ES at minimum volume.

Contraction state ``c(τ)`` ∈ [0, 1] over the normalised cycle time τ ∈ [0, 1) is a
piecewise-cosine curve (C¹: every knot has zero slope) through the phases of the cycle, with
``α`` the systolic fraction (≈ 1/3, ED → ES):

========================  =====================  ==============
phase                     τ                      c
========================  =====================  ==============
isovolumic contraction    0 → 0.15 α             0 → 0.03
ejection                  0.15 α → α             0.03 → 1 (ES)
isovolumic relaxation     α → α + 0.08           1 → 0.97
rapid filling (E wave)    → α + 0.30             0.97 → 0.25
diastasis                 → 0.85                 0.25 → 0.18
atrial kick (A wave)      0.85 → 1               0.18 → 0 (ED)
========================  =====================  ==============

Deformation at contraction c of a wall point at ED (axial s, angle φ, AHA weight w(s, φ)):

* radial contraction toward the ring's ED centroid: ``r ← r · (1 − c · k · w · h(s))`` for ``w ≥ 0``
  (``w`` = 1 normal, 0 akinetic) and ``r ← r · (1 + c · 0.2 · |w|)`` for dyskinetic walls
  (``w < 0``: the wall bulges out in systole, independently of ``k``). ``h(s) = 1 + γ · (1 − 2s)``
  (cohort-2.3, γ = ``apical_gradient``) lets the apex shorten its radius more than the base, as
  endocardial circumferential shortening does in normal hearts (it grows from base to apex: MRI
  tagging, Moore et al., Radiology 2000, and the echo strain norms; quoted from memory, not fitted);
* long-axis shortening (base descent; the apex stays at the origin):
  ``z ← z · (1 − c · ls · g(φ))`` with ``g = 0.5 + 0.5 · w_basal(φ)`` so hypokinetic walls
  descend less;
* twist about +z: ``θ = c · (θ_apex · (1 − s) + θ_base · s)``; seen from the apex the apex turns
  counter-clockwise (negative angle about +z) and the base clockwise (positive).

The mitral cap follows the base ring. ``k`` is solved from exact mesh volumes so
the ES volume matches the subject's target EF (the volume is exactly quadratic in ``k``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.cohort.segments import LEVEL_EDGES, N_SEGMENTS, regional_field
from models.cohort.shape_model import EDShape, close_wall
from models.geometry.mesh import Mesh, mesh_volume_ml

FloatArray = NDArray[np.float64]

K_MAX = 0.55
"""Largest radial fraction: a normal wall shrinks to at most 45 % of its ED radius."""
DYSKINESIA_FRACTION = 0.2
"""Outward radial motion per unit negative wall-motion weight (w = −0.6 → +12 % radius at ES)."""
MAX_APICAL_GRADIENT = 0.5
"""Largest |γ|: with k ≤ K_MAX the apex shrinks to at most 1 − 0.55 · 1.5 ≈ 18 % of its ED radius."""


@dataclass(frozen=True)
class MotionParams:
    """Cycle parameters of one subject.

    ``segment_motion`` (17,) is the AHA wall-motion weight per segment (1 normal, 0.3–0.6
    hypokinetic, ~0 akinetic, < 0 dyskinetic). ``radial_fraction`` is ``k`` (solved for the EF
    target by :func:`solve_radial_fraction`; ``None`` before solving). ``apical_gradient`` γ scales
    the radial contraction by ``1 + γ`` at the apex and ``1 − γ`` at the base (0: uniform).
    """

    ef_target: float
    long_shortening: float
    twist_apex_deg: float
    twist_base_deg: float
    segment_motion: tuple[float, ...]
    systole_fraction: float
    heart_rate_bpm: float
    radial_fraction: float | None = None
    apical_gradient: float = 0.0

    def __post_init__(self) -> None:
        if len(self.segment_motion) != N_SEGMENTS:
            raise ValueError(f"segment_motion needs {N_SEGMENTS} values")
        if not (-MAX_APICAL_GRADIENT <= self.apical_gradient <= MAX_APICAL_GRADIENT):
            raise ValueError(f"apical_gradient must be within ±{MAX_APICAL_GRADIENT}")
        if not (0.2 <= self.systole_fraction <= 0.5):
            raise ValueError("systole_fraction must be within 0.2–0.5")
        if not (20.0 <= self.heart_rate_bpm <= 200.0):
            raise ValueError("heart_rate_bpm must be within 20–200")

    @property
    def rr_s(self) -> float:
        """Cycle length (s)."""
        return 60.0 / self.heart_rate_bpm

    def to_dict(self) -> dict[str, object]:
        return {
            "ef_target": self.ef_target,
            "long_shortening": self.long_shortening,
            "twist_apex_deg": self.twist_apex_deg,
            "twist_base_deg": self.twist_base_deg,
            "segment_motion": list(self.segment_motion),
            "systole_fraction": self.systole_fraction,
            "heart_rate_bpm": self.heart_rate_bpm,
            "radial_fraction": self.radial_fraction,
            "apical_gradient": self.apical_gradient,
        }


def _knots(alpha: float) -> tuple[list[float], list[float]]:
    taus = [0.0, 0.15 * alpha, alpha, alpha + 0.08, alpha + 0.30, 0.85, 1.0]
    cs = [0.0, 0.03, 1.0, 0.97, 0.25, 0.18, 0.0]
    return taus, cs


def contraction(tau: FloatArray, systole_fraction: float) -> FloatArray:
    """Contraction state c(τ) (same shape as ``tau``, τ taken modulo 1); 0 at ED, 1 at ES (τ = α)."""
    t = np.mod(np.asarray(tau, dtype=np.float64), 1.0)
    taus, cs = _knots(systole_fraction)
    out = np.zeros_like(t)
    for i in range(len(taus) - 1):
        lo, hi = taus[i], taus[i + 1]
        inside = (t >= lo) & (t < hi) if i < len(taus) - 2 else (t >= lo) & (t <= hi)
        u = (t[inside] - lo) / (hi - lo)
        out[inside] = cs[i] + (cs[i + 1] - cs[i]) * 0.5 * (1.0 - np.cos(np.pi * u))
    return out


def cardiac_phase(tau: FloatArray, systole_fraction: float) -> FloatArray:
    """Phase θ ∈ [0, 2π) of the asymmetric cycle: ED = 0, ES = π (piecewise-linear warp)."""
    t = np.mod(np.asarray(tau, dtype=np.float64), 1.0)
    a = systole_fraction
    out: FloatArray = np.where(t <= a, np.pi * t / a, np.pi * (1.0 + (t - a) / (1.0 - a)))
    return out


@dataclass(frozen=True)
class MotionField:
    """Per-wall-vertex motion weights precomputed for one ED shape."""

    ring_centre: FloatArray  # (n_wall, 1, 2)
    radial_weight: FloatArray  # (n_wall, n_phi): w, times h(s) where w ≥ 0
    long_weight: FloatArray  # (1, n_phi)
    twist_profile: FloatArray  # (n_wall, 1) radians per unit contraction


def motion_field(ed: EDShape, motion: MotionParams) -> MotionField:
    """Regional weights of ``motion`` evaluated on the template coordinates of ``ed``."""
    t = ed.template
    wall = ed.wall
    seg = np.asarray(motion.segment_motion, dtype=np.float64)
    w = regional_field(seg, ed.s[:, None], t.phi[None, :])
    w_basal = regional_field(seg, np.full(t.n_phi, 0.5 * (LEVEL_EDGES[2] + 1.0)), t.phi)
    twist = np.radians(motion.twist_apex_deg * (1.0 - ed.s) + motion.twist_base_deg * ed.s)
    h = 1.0 + motion.apical_gradient * (1.0 - 2.0 * ed.s[:, None])
    return MotionField(
        ring_centre=wall[:, :, :2].mean(axis=1, keepdims=True),
        radial_weight=np.where(w >= 0.0, w * h, w),
        long_weight=(0.5 + 0.5 * w_basal)[None, :],
        twist_profile=twist[:, None],
    )


def deform(ed: EDShape, field: MotionField, motion: MotionParams, c: float, k: float | None = None) -> FloatArray:
    """Vertices (N, 3) at contraction ``c`` (0 = ED) with radial fraction ``k`` (default: solved)."""
    kk = motion.radial_fraction if k is None else k
    if kk is None:
        raise ValueError("radial_fraction not solved yet; call solve_radial_fraction first")
    wall = ed.wall
    w = field.radial_weight  # (n_wall, n_phi)
    scale = 1.0 - c * (kk * np.maximum(w, 0.0) + DYSKINESIA_FRACTION * np.minimum(w, 0.0))
    xy = field.ring_centre + (wall[:, :, :2] - field.ring_centre) * scale[:, :, None]
    z = wall[:, :, 2] * (1.0 - c * motion.long_shortening * field.long_weight)
    ang = c * field.twist_profile  # (n_wall, 1)
    cos, sin = np.cos(ang), np.sin(ang)
    x = cos * xy[:, :, 0] - sin * xy[:, :, 1]
    y = sin * xy[:, :, 0] + cos * xy[:, :, 1]
    return close_wall(ed.template, np.stack([x, y, z], axis=-1), ed.dome_mm, ed.cap_flat)


def solve_radial_fraction(ed: EDShape, motion: MotionParams) -> float:
    """Radial fraction k ∈ [0, K_MAX] giving the target EF at c = 1.

    At fixed c the lateral coordinates are affine in k and z does not depend on k, so the
    exact mesh volume (a sum of 3×3 determinants) is a quadratic in k: three exact volumes
    fix it and the smallest root in range is returned. Returns K_MAX when the target is out of
    reach (e.g. large dyskinetic regions) and 0 when even k = 0 is below the target ESV.
    """
    field = motion_field(ed, motion)
    edv = mesh_volume_ml(ed.mesh)
    target_esv = edv * (1.0 - motion.ef_target / 100.0)
    ks = np.array([0.0, 0.5 * K_MAX, K_MAX])
    vols = np.array([mesh_volume_ml(Mesh(deform(ed, field, motion, 1.0, float(k)), ed.template.faces)) for k in ks])
    coeffs = np.polyfit(ks, vols - target_esv, 2)
    if vols[2] >= target_esv:
        return K_MAX
    if vols[0] <= target_esv:
        return 0.0
    roots = [float(r.real) for r in np.roots(coeffs) if abs(r.imag) < 1e-9 and -1e-9 <= r.real <= K_MAX + 1e-9]
    return float(np.clip(min(roots), 0.0, K_MAX)) if roots else K_MAX


@dataclass(frozen=True)
class CardiacCycle:
    """One cycle: vertices (T, N, 3) mm, shared faces (F, 3), volumes (T,) mL, times (T,) s."""

    vertices: FloatArray
    faces: NDArray[np.int64]
    volumes_ml: FloatArray
    frame_times_s: FloatArray
    contraction: FloatArray  # (T,)
    ed_frame: int
    es_frame: int

    @property
    def n_frames(self) -> int:
        return int(self.vertices.shape[0])

    def mesh(self, frame: int) -> Mesh:
        return Mesh(self.vertices[frame], self.faces)

    @property
    def edv_ml(self) -> float:
        return float(self.volumes_ml[self.ed_frame])

    @property
    def esv_ml(self) -> float:
        return float(self.volumes_ml[self.es_frame])

    @property
    def ef_percent(self) -> float:
        return 100.0 * (1.0 - self.esv_ml / self.edv_ml)


def build_cycle(ed: EDShape, motion: MotionParams, n_frames: int, fps: float | None = None) -> CardiacCycle:
    """Sample ``n_frames`` frames starting at ED (frame 0).

    By default the frames span exactly one cycle (τ = i / T, so fps = T / RR); with ``fps``
    given, frame i is at time i / fps (the clip may cover more or less than one cycle).
    """
    if n_frames < 2:
        raise ValueError("a cycle needs at least 2 frames")
    if fps is not None and not fps > 0:
        raise ValueError("fps must be positive")
    field = motion_field(ed, motion)
    frames = np.arange(n_frames, dtype=np.float64)
    tau = frames / n_frames if fps is None else frames / (fps * motion.rr_s)
    cs = contraction(tau, motion.systole_fraction)
    verts = np.stack([deform(ed, field, motion, float(c)) for c in cs])
    faces = ed.template.faces
    vols = np.array([mesh_volume_ml(Mesh(v, faces)) for v in verts])
    return CardiacCycle(
        vertices=verts,
        faces=faces,
        volumes_ml=vols,
        frame_times_s=tau * motion.rr_s,
        contraction=cs,
        ed_frame=int(np.argmax(vols)),
        es_frame=int(np.argmin(vols)),
    )


def frame_at(ed: EDShape, motion: MotionParams, tau: float) -> Mesh:
    """The cavity at an arbitrary cycle time τ (fraction of the cycle, 0 = ED)."""
    field = motion_field(ed, motion)
    c = float(contraction(np.array([tau]), motion.systole_fraction)[0])
    return Mesh(deform(ed, field, motion, c), ed.template.faces)


__all__ = [
    "K_MAX",
    "CardiacCycle",
    "MotionField",
    "MotionParams",
    "build_cycle",
    "cardiac_phase",
    "contraction",
    "deform",
    "frame_at",
    "motion_field",
    "solve_radial_fraction",
]
