"""Statistical/parametric LV endocardial cavity model (end-diastole) with 25 modes.

Geometry. A wall point with template coordinates (t, φ) (``template.py``) sits at the
prolate angle ``ν = t · ν_b`` of a truncated prolate spheroid (truncation angle ``ν_b``):

* axial position ``s(ν) = (1 − cos ν) / (1 − cos ν_b)`` ∈ [0, 1], ``z = L · s + tilt``;
* radius ``r(s, φ) = R · sin(ν)^q / max sin^q · exp(Σ_m b_m σ_m B_m(s, φ))`` about the long axis,
  with ``q = p (1 + κ)`` apical to the widest level (ν < 90°) and ``q = p`` basal to it (``conicity`` κ),
  plus an axis bow ``β · R · 4 s (1 − s)``;
* a flat or slightly domed mitral cap closes the base ring (dome height ``h`` mm).

The base ring is re-centred onto the long axis by a shear ``x −= s · c`` (apex unmoved), so
the canonical frame holds exactly: apex at the origin, mitral centre (mean of the base ring)
at ``(0, 0, L)``. ``R`` is then solved so the mesh volume equals the requested EDV exactly
(a lateral scaling by f multiplies the volume by f²), and ``L`` follows from the requested
sphericity index ``SI = D_eq / L`` with ``D_eq = sqrt(6 · EDV / (π · L))`` the short-axis
diameter of the prolate ellipsoid of the same volume and length (so SI is exact too).

Modes: 2 global (size = EDV, sphericity = SI) and 23 local shape modes listed in
:data:`SHAPE_MODES` with their standard deviations; a subject is the phenotype mean plus
``z · σ`` for z-scores ``z`` (clipped to ±2.5).

Basal anatomy (cohort-2.0). The base rim's height about the annulus plane is
``rim_height(φ)`` (tilt, saddle, outflow rise; its ring mean is exactly 0) times ``s⁴``, and three
log-radius terms act only above s = 0.6 (``basal_ramp``). Ranges and their sources (literature
values quoted from memory, to be re-checked against the papers; they are priors, not fits):

* ``lvot_height`` 7 ± 2 mm: the aortic valve sits basal to the mitral annulus on the antero-septal
  side (φ = −120°, in the A3C plane), joined to the anterior mitral leaflet by the fibrous
  aorto-mitral curtain, 7–10 mm long at an aorto-mitral angle of ≈ 120–140° in normal adults
  (3D TEE: Veronesi et al., Circ Cardiovasc Imaging 2009; anatomy: Ho, Eur J Echocardiogr 2009).
  Sector 1/e half-width 28° = an LVOT of 20–22 mm (Lang et al., JASE 2015) on the basal rim.
* ``lvot_bulge`` 0.05 ± 0.03 log r: the outflow sector of the basal cavity is wider than the
  tapering mural wall (the LVOT does not narrow toward the valve like the inflow; same sources).
* curtain: in the outflow sector the mitral cap's dome fades (``cap_rings``), so the cap runs as a
  straight sheet from the raised outflow rim toward the mitral centre — the flat aorto-mitral
  curtain instead of a domed leaflet (no parameter; its slope follows ``lvot_height``).
* ``basal_ellipticity`` 0.10 ± 0.04 log r (minor axis along −120°/60°, the septal-lateral or
  antero-posterior diameter of the annulus): the normal mitral annulus is D-shaped with a
  septal-lateral / inter-commissural diameter ratio of ≈ 0.75–0.85 (3D echo: Kaplan et al.,
  Am Heart J 2000; Kwan et al., Circulation 2003), i.e. a log-radius amplitude of ≈ 0.08–0.14.
* ``annular_saddle`` 2.5 ± 1 mm: half the non-planarity of the saddle-shaped annulus, highs at the
  aortic (−120°) and posterior (60°) sides, lows at the commissures; annular height ≈ 5–7 mm in
  normal adults (Levine et al., Circulation 1989; Jassar et al., Ann Thorac Surg 2011).

Radius profile (cohort-2.2). ``conicity`` κ raises the profile exponent on the apical side of the
widest level only: ``r ∝ sin(ν)^(p (1 + κ))`` for ν < 90°, ``sin(ν)^p`` basal to it
(:func:`radius_profile`). κ = 0 is the truncated prolate spheroid; κ = 1 (p = 1) makes the apical
generatrix ``x (2 − x)`` (x = s / s_equator), a conical tip joined tangentially to the widest level,
i.e. the tapered-apex "bullet" end of the range. The annulus ratio, the widest level and the basal
part are unchanged; with the exact-EDV lateral rescale the basal-mid cavity widens as the apex
narrows, so the size-free radius profile (``models.cohort.basal``) moves from the prolate's toward a
bullet's: narrower at z = 0.2 L, wider at 0.6–0.9 L. Range (quoted from memory, to be re-checked;
a prior, not a fit):

* the hemi-ellipsoid–cylinder ("bullet") model, V = 5/6 · A · L with A the short-axis area at the
  mitral level, was the most accurate of the 2D-echo volume models against the true volumes of
  fixed hearts / casts (Wyatt et al., Circulation 1980; it is the ASE "area–length" method). For our
  cavities the coefficient V / (A · L) with A at z = 0.9 L (about the leaflet-tip level) is 0.874 at
  κ = 0 (ν_b = 122°, p = 1, no other mode), 0.836 at κ = 0.3 and 0.772 at κ = 1 (0.834 with A at
  0.95 L). The mean **κ = 0.3** puts the cohort's median cavity at the bullet coefficient 5/6 — the
  literature's typical ventricle — and no further;
* σ = 0.3: the plain prolate (κ = 0, the ellipsoid model that the same literature found usable,
  less accurate) stays at −1 σ, the conical tip (κ = 1, coefficient 5/6 if A is taken at 0.95 L)
  at +2.3 σ; z is clipped at ±2.5, so κ ∈ [−0.45, 1.05];
* apical taper ("conicity") is among the leading LV shape modes after size and sphericity in
  population shape atlases (e.g. the MESA / Cardiac Atlas Project atlas, Medrano-Gracia et al.,
  J Cardiovasc Magn Reson 2014 — from memory; the atlas itself is not used: no licence for it).

A literal bullet (a hemi-ellipsoid of L/2 and a cylinder of L/2) was computed and not used: size-free
it is *wider* than the prolate at 0.2 L (0.73 vs 0.68 of D_eq/2) and narrower at 0.6–0.95 L (its
V / (A_max · L) is 0.80 against the prolate's 0.75), the opposite of the taper. No phenotype offset
is applied (the dilated and aneurysm phenotypes keep their blunter ``pointedness``).

``trefoil_s3`` (sin 3φ) is gone: it is 0 on all three nominal planes (0°, −60°, −120°, i.e.
every multiple of 60°), so no apical view sees it (cohort-1.0 drew it with σ = 0.03).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from models.cohort.template import DEFAULT_TEMPLATE, Template
from models.geometry.mesh import Mesh, mesh_volume_mm3

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ModeSpec:
    """One local shape mode: name, population mean and standard deviation, unit, meaning."""

    name: str
    mean: float
    std: float
    unit: str
    description: str


SHAPE_MODES: Final[tuple[ModeSpec, ...]] = (
    ModeSpec("pointedness", 0.0, 0.15, "log p", "apical pointedness: profile exponent p = exp(b) of sin(ν)^p"),
    ModeSpec("truncation", 122.0, 7.0, "deg", "truncation angle ν_b: annulus / max diameter = sin(ν_b)"),
    ModeSpec("septal_flattening", 0.05, 0.05, "log r", "radius reduction at the septum (φ = 180°)"),
    ModeSpec("ellipticity_c2", 0.0, 0.06, "log r", "short-axis ellipticity cos 2φ"),
    ModeSpec("ellipticity_s2", 0.0, 0.06, "log r", "short-axis ellipticity sin 2φ"),
    ModeSpec("trefoil_c3", 0.0, 0.03, "log r", "third-order lobes cos 3φ"),
    ModeSpec("lateral_skew", 0.0, 0.05, "log r", "cos φ · P1(s): lateral vs septal width changing base→apex"),
    ModeSpec("anterior_skew", 0.0, 0.05, "log r", "sin φ · P1(s): inferior vs anterior width changing base→apex"),
    ModeSpec("ellipticity_twist_c", 0.0, 0.03, "log r", "cos 2φ · P1(s): ellipticity changing along the axis"),
    ModeSpec("ellipticity_twist_s", 0.0, 0.03, "log r", "sin 2φ · P1(s)"),
    ModeSpec("mid_waist", 0.0, 0.05, "log r", "P2(s): mid-cavity waist (−) or barrel (+)"),
    ModeSpec("basal_taper", 0.0, 0.03, "log r", "P3(s): basal narrowing / widening"),
    ModeSpec("apical_bulge", 0.0, 0.05, "log r", "Gaussian widening around s = 0.22 (aneurysm: 0.2–0.35)"),
    ModeSpec("tilt_x", 0.0, 0.025, "L", "mitral-plane tilt: base height change cos φ, as a fraction of L"),
    ModeSpec("tilt_y", 0.0, 0.025, "L", "mitral-plane tilt: base height change sin φ, as a fraction of L"),
    ModeSpec("bow_x", 0.0, 0.06, "R", "axis bow toward +x (banana shape), fraction of the max radius"),
    ModeSpec("bow_y", 0.0, 0.06, "R", "axis bow toward +y"),
    ModeSpec("mitral_dome", 2.0, 1.0, "mm", "height of the mitral cap dome above the annulus plane (≥ 0)"),
    # --- basal anatomy (cohort-2.0; ranges and sources in the module docstring)
    ModeSpec("lvot_height", 7.0, 2.0, "mm", "outflow tract: base rim raised toward the aortic valve, φ = −120° (≥ 0)"),
    ModeSpec("lvot_bulge", 0.05, 0.03, "log r", "outflow tract: basal widening of the antero-septal sector"),
    ModeSpec("basal_ellipticity", 0.10, 0.04, "log r",
             "basal short-axis ellipticity, minor axis along −120°/60° (aorto-mitral / septal-lateral)"),
    ModeSpec("annular_saddle", 2.5, 1.0, "mm", "mitral saddle: half the annular height, highs at −120° and 60° (≥ 0)"),
    # --- radius profile (cohort-2.2; range and sources in the module docstring)
    ModeSpec("conicity", 0.3, 0.3, "exp",
             "apical taper: exponent 1 + κ on the apical half-ellipse (0 = prolate, 1 = conical tip, bullet-like)"),
)
"""The 23 local shape modes (with EDV and sphericity: 25 modes). ``trefoil_s3`` (sin 3φ) of
cohort-1.0 is dropped: it vanishes on all three nominal planes (0°, −60°, −120°), so no apical
view can see it and it only set an error floor the prior could not lift."""

NON_NEGATIVE_MODES: Final[tuple[str, ...]] = ("mitral_dome", "lvot_height", "annular_saddle")
BASAL_MODES: Final[tuple[str, ...]] = ("lvot_height", "lvot_bulge", "basal_ellipticity", "annular_saddle")
"""Modes added in cohort-2.0; their z-scores are drawn after every cohort-1.0 draw."""
PROFILE_MODES: Final[tuple[str, ...]] = ("conicity",)
"""Modes added in cohort-2.2; their z-scores are drawn after the basal modes' (every cohort-2.0
draw of a seed is kept)."""
CONICITY_MIN: Final[float] = -0.5
"""Floor of ``conicity`` (apical exponent ≥ 0.5 · p; z is clipped at ±2.5 so it is never reached
by the cohort, only guards hand-built parameters)."""
LVOT_AZIMUTH_DEG: Final[float] = -120.0
"""Azimuth of the aortic valve / outflow tract (the A3C plane's antero-septal side)."""
LVOT_HALF_WIDTH_DEG: Final[float] = 28.0
"""1/e half-width of the outflow sector: LVOT diameter ≈ 20–22 mm on a basal circumference of
≈ 140–160 mm spans ≈ 50° (ASE/EACVI chamber quantification, Lang et al. 2015)."""
BASAL_RAMP_START: Final[float] = 0.6
"""The basal modes act on s > 0.6 with weight ((s − 0.6) / 0.4)², 1 at the annulus."""

MODE_INDEX: Final[dict[str, int]] = {m.name: i for i, m in enumerate(SHAPE_MODES)}
N_SHAPE_MODES: Final[int] = len(SHAPE_MODES) + 2
Z_CLIP: Final[float] = 2.5


@dataclass(frozen=True)
class ShapeParams:
    """End-diastolic cavity parameters: EDV (mL), sphericity index, 23 local mode values.

    ``modes`` holds the *values* (mean + z·std, in each mode's unit), not z-scores.
    """

    edv_ml: float
    sphericity: float
    modes: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.modes) != len(SHAPE_MODES):
            raise ValueError(f"ShapeParams needs {len(SHAPE_MODES)} mode values, got {len(self.modes)}")
        if not (20.0 <= self.edv_ml <= 600.0):
            raise ValueError(f"EDV {self.edv_ml} mL outside the modelled range 20–600 mL")
        if not (0.2 <= self.sphericity <= 1.2):
            raise ValueError(f"sphericity index {self.sphericity} outside 0.2–1.2")

    def mode(self, name: str) -> float:
        return float(self.modes[MODE_INDEX[name]])

    @property
    def length_mm(self) -> float:
        """Long-axis length L (apex → mitral centre) implied by EDV and SI."""
        return float((6.0 * self.edv_ml * 1000.0 / (math.pi * self.sphericity**2)) ** (1.0 / 3.0))

    @classmethod
    def from_zscores(
        cls, edv_ml: float, sphericity: float, z: FloatArray, offsets: dict[str, float] | None = None
    ) -> ShapeParams:
        """Mode values = mean + clip(z, ±2.5) · std (+ phenotype ``offsets`` by mode name)."""
        zc = np.clip(np.asarray(z, dtype=np.float64).reshape(len(SHAPE_MODES)), -Z_CLIP, Z_CLIP)
        values = [m.mean + float(zi) * m.std for m, zi in zip(SHAPE_MODES, zc, strict=True)]
        for name, off in (offsets or {}).items():
            values[MODE_INDEX[name]] += off
        for name in NON_NEGATIVE_MODES:
            values[MODE_INDEX[name]] = max(0.0, values[MODE_INDEX[name]])
        return cls(float(edv_ml), float(sphericity), tuple(values))

    def to_dict(self) -> dict[str, float]:
        out = {"edv_ml": self.edv_ml, "sphericity": self.sphericity, "length_mm": self.length_mm}
        out.update({m.name: v for m, v in zip(SHAPE_MODES, self.modes, strict=True)})
        return out


@dataclass(frozen=True)
class EDShape:
    """An end-diastolic cavity with the material coordinates the motion model needs."""

    mesh: Mesh
    template: Template
    s: FloatArray  # (n_wall,) normalised axial position of each wall ring at ED
    dome_mm: float
    length_mm: float
    cap_flat: FloatArray | None = None  # (n_phi,) curtain weight of the cap (None: plain dome)

    @property
    def wall(self) -> FloatArray:
        """Wall vertices (n_wall, n_phi, 3)."""
        t = self.template
        return self.mesh.vertices[t.wall_slice].reshape(t.n_wall, t.n_phi, 3)


def _legendre(s: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    x = 2.0 * s - 1.0
    return x, 0.5 * (3.0 * x**2 - 1.0), 0.5 * (5.0 * x**3 - 3.0 * x)


def log_radius(params: ShapeParams, s: FloatArray, phi: FloatArray) -> FloatArray:
    """Σ_m b_m B_m(s, φ): the log-radius modulation (n_s, n_phi) of the local modes."""
    b = dict(zip(MODE_INDEX, params.modes, strict=True))
    ss = s[:, None]
    ph = phi[None, :]
    p1, p2, p3 = _legendre(ss)
    from_septum = np.abs(np.mod(ph, 2 * np.pi) - np.pi)  # angular distance to φ = 180°
    septal = np.exp(-((from_septum / 0.7) ** 2))
    apical = np.exp(-(((ss - 0.22) / 0.15) ** 2))  # peak 1 at s = 0.22, fades toward the pole
    out: FloatArray = (
        -b["septal_flattening"] * septal
        + b["ellipticity_c2"] * np.cos(2 * ph)
        + b["ellipticity_s2"] * np.sin(2 * ph)
        + b["trefoil_c3"] * np.cos(3 * ph)
        + b["lateral_skew"] * np.cos(ph) * p1
        + b["anterior_skew"] * np.sin(ph) * p1
        + b["ellipticity_twist_c"] * np.cos(2 * ph) * p1
        + b["ellipticity_twist_s"] * np.sin(2 * ph) * p1
        + b["mid_waist"] * p2
        + b["basal_taper"] * p3
        + b["apical_bulge"] * apical
    )
    ramp = basal_ramp(ss)
    out = out + ramp * (b["lvot_bulge"] * lvot_sector(ph) - b["basal_ellipticity"] * np.cos(2 * (ph - _LVOT)))
    return out


_LVOT: Final[float] = math.radians(LVOT_AZIMUTH_DEG)


def basal_ramp(s: FloatArray) -> FloatArray:
    """Weight of the basal modes: 0 below s = 0.6, ((s − 0.6) / 0.4)² above (1 at the annulus)."""
    out: FloatArray = np.clip((s - BASAL_RAMP_START) / (1.0 - BASAL_RAMP_START), 0.0, 1.0) ** 2
    return out


def lvot_sector(phi: FloatArray) -> FloatArray:
    """Gaussian sector weight (1 at φ = −120°, 1/e at ±28°) of the outflow tract."""
    d = np.angle(np.exp(1j * (np.asarray(phi, dtype=np.float64) - _LVOT)))
    out: FloatArray = np.exp(-((d / math.radians(LVOT_HALF_WIDTH_DEG)) ** 2))
    return out


def rim_height(params: ShapeParams, length: float, phi: FloatArray) -> FloatArray:
    """Height change (n_phi,) mm of the base rim about the annulus plane z = L; its mean over the
    ring is exactly 0, so the mitral centre (mean of the base ring) stays at z = L.

    Mitral-plane tilt (first harmonic), saddle (second harmonic, highs at −120° and 60°) and the
    outflow-tract rise at −120° (its ring mean removed: the rest of the rim sinks by ≈ 0.14 h).
    """
    sector = lvot_sector(phi)
    out: FloatArray = (
        length * (params.mode("tilt_x") * np.cos(phi) + params.mode("tilt_y") * np.sin(phi))
        + params.mode("annular_saddle") * np.cos(2 * (phi - _LVOT))
        + params.mode("lvot_height") * (sector - sector.mean())
    )
    return out


def radius_profile(nu: FloatArray, nu_b: float, p: float, conicity: float) -> FloatArray:
    """Unit radius profile (n,) along the prolate angle ``nu`` (n,) (max 1).

    ``sin(ν)^q`` with ``q = p · (1 + κ)`` on the apical side (ν < 90°) and ``q = p`` basal to the
    equator: κ = 0 is the truncated prolate spheroid, κ = 1 (p = 1) gives the apical generatrix
    ``x (2 − x)`` (x = s / s_equator), a conical tip joined tangentially (C¹) to the widest level.
    The basal part, the annulus ratio ``sin(ν_b)^p`` and the widest level are unchanged.
    """
    k = max(float(conicity), CONICITY_MIN)
    apical = nu < 0.5 * math.pi
    q = np.where(apical, p * (1.0 + k), p)
    rho: FloatArray = np.sin(nu) ** q
    peak = 1.0 if nu_b >= 0.5 * math.pi else math.sin(nu_b) ** (p * (1.0 + k))
    return rho / peak


def build_ed_shape(params: ShapeParams, template: Template = DEFAULT_TEMPLATE) -> EDShape:
    """Watertight end-diastolic cavity (canonical frame, mm) with volume exactly ``params.edv_ml``."""
    nu_b = math.radians(params.mode("truncation"))
    p = math.exp(params.mode("pointedness"))
    length = params.length_mm
    nu = template.wall_t * nu_b
    s = (1.0 - np.cos(nu)) / (1.0 - math.cos(nu_b))
    s[-1] = 1.0
    rho0 = radius_profile(nu, nu_b, p, params.mode("conicity"))
    phi = template.phi
    r = rho0[:, None] * np.exp(log_radius(params, s, phi))  # (n_wall, n_phi), unit max radius ~1
    bow = 4.0 * s * (1.0 - s)
    x = r * np.cos(phi)[None, :] + params.mode("bow_x") * bow[:, None]
    y = r * np.sin(phi)[None, :] + params.mode("bow_y") * bow[:, None]
    z = length * s[:, None] + (s**4)[:, None] * rim_height(params, length, phi)[None, :]
    # Shear so the base-ring centroid lies on the long axis (the apex stays at the origin).
    cx, cy = float(x[-1].mean()), float(y[-1].mean())
    x = x - s[:, None] * cx
    y = y - s[:, None] * cy
    wall = np.stack([x, y, z], axis=-1)
    dome = params.mode("mitral_dome")
    flat = lvot_sector(phi) if params.mode("lvot_height") > 0 else np.zeros_like(phi)
    unit = _close(template, wall, length, dome, flat)
    volume_unit = mesh_volume_mm3(Mesh(unit, template.faces))
    f = math.sqrt(params.edv_ml * 1000.0 / volume_unit)
    vertices = unit.copy()
    vertices[:, :2] *= f
    return EDShape(Mesh(vertices, template.faces), template, s, dome, length, flat)


def cap_rings(template: Template, base: FloatArray, centre: FloatArray, dome_mm: float,
              flat: FloatArray | None = None) -> FloatArray:
    """Cap ring vertices (n_cap, n_phi, 3) between the base ring (n_phi, 3) and the centre (3,).

    The dome lift is ``dome · (1 − ρ²) · (1 − flat(φ) · ρ)``: with ``flat`` = the outflow sector
    the cap runs as a straight sheet from the raised outflow rim toward the centre (the
    aorto-mitral curtain), domed only on the mural side.
    """
    rho = template.cap_rho[:, None]
    f = np.zeros(template.n_phi) if flat is None else np.asarray(flat, dtype=np.float64)
    lift = dome_mm * (1.0 - rho**2) * (1.0 - f[None, :] * rho)  # (n_cap, n_phi)
    out: FloatArray = centre[None, None, :] + rho[:, :, None] * (base[None, :, :] - centre[None, None, :])
    out[..., 2] += lift
    return out


def _close(template: Template, wall: FloatArray, length: float, dome_mm: float, flat: FloatArray) -> FloatArray:
    centre_base = np.array([0.0, 0.0, length])
    cap = cap_rings(template, wall[-1], centre_base, dome_mm, flat)
    return template.assemble(wall, cap, centre_base + np.array([0.0, 0.0, dome_mm]))


def close_wall(template: Template, wall: FloatArray, dome_mm: float, flat: FloatArray | None = None) -> FloatArray:
    """Full vertex array (N, 3) from moved wall rings: the cap follows the base ring (centre =
    the base ring's mean, dome and curtain kept)."""
    centre = wall[-1].mean(axis=0)
    cap = cap_rings(template, wall[-1], centre, dome_mm, flat)
    return template.assemble(wall, cap, centre + np.array([0.0, 0.0, dome_mm]))
