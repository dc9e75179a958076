"""The anatomy around an LV cavity mask of an apical view: an echogenicity map for the B-mode simulator.

Built in the LV's own frame: ``s`` along its long axis (apex → base, mm) and ``v`` across it
(mm, positive towards the screen-right, i.e. the lateral wall when the septum is on the left).
The mitral plane is ``s = s_base`` (the deepest extent of the cavity). Around the cavity:

* a myocardium of random thickness (7–13 mm; thinner towards the apex) that stops at the
  mitral plane, with a fibrous **annulus** (bright knots) at both basal corners;
* a **left atrium** that abuts the cavity across the mitral plane (the label stops there, the
  dark blood does not), and the **mitral leaflets**: open (two thin bright lines hanging into
  the LV from the annulus; part of the labelled cavity, as in CAMUS-style contours) or closed
  (a slightly bowed line across the plane). In a quarter of the scenes the valve is **wide open
  with an unmarked plane** (early filling): leaflets against the walls and faint, annulus knots
  faint, an atrium as wide as the base with no waist, so that the cues left are where the LV's
  myocardium ends and faint hinge points (the real failure this covers: a segmenter that had only
  seen bright annulus knots followed the blood into the atrium, 122 mm long on pydicom's
  ``ybr_color``);
* in A4C a right ventricle (a shrunk copy of the LV across an 8–13 mm septum) and a right
  atrium, in A3C an aortic root beside the left atrium; walls around every chamber; a bright
  pericardium; heterogeneous surrounding tissue with dark (lung) patches;
* **papillary muscles** and **trabeculae** inside the cavity near the lateral wall and apex
  (bright, but labelled LV, as expert contours include them).

``echogenicity_map`` returns the map (H, W) of mean scattering amplitude (blood ≈ 0.01–0.1,
myocardium ≈ 0.4–1, valves and pericardium > 1); ``models.cohort.echo_physics`` turns it into
a B-mode image. Everything is vectorised numpy/scipy; deterministic for a given ``rng`` state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from models.cohort.bmode import smooth_noise

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
UNMARKED_PLANE_FRACTION = 0.25  # scenes whose mitral plane has no bright marker (early filling)


@dataclass(frozen=True)
class LVFrame:
    """The LV's frame in pixel space: ``origin`` (row, col) of the apex-most point on the axis,
    unit vectors ``u`` (apex → base) and ``n`` (screen-right normal), in mm per pixel units."""

    origin: tuple[float, float]
    u: tuple[float, float]
    n: tuple[float, float]
    s_base: float
    v_lo: float  # septal edge of the basal cavity (mm)
    v_hi: float  # lateral edge of the basal cavity (mm)
    length: float
    half_width: float  # half the cavity's widest extent across the axis (mm)


def lv_frame(lv: BoolArray, spacing_mm: tuple[float, float]) -> LVFrame | None:
    """Principal-axis frame of the cavity (``None`` when it is too small to have one)."""
    rows, cols = np.nonzero(lv)
    if rows.size < 20:
        return None
    sr, sc = spacing_mm
    pts = np.stack([rows * sr, cols * sc], axis=1).astype(np.float64)
    centre = pts.mean(axis=0)
    axis = np.linalg.eigh((pts - centre).T @ (pts - centre))[1][:, -1]
    if axis[0] < 0:  # apex (near the probe, row 0) → base (deep)
        axis = -axis
    normal = np.array([-axis[1], axis[0]])
    if normal[1] < 0:
        normal = -normal
    s = (pts - centre) @ axis
    v = (pts - centre) @ normal
    s_min, s_max = float(s.min()), float(s.max())
    basal = s > s_max - 4.0
    origin = centre + s_min * axis
    return LVFrame((float(origin[0]), float(origin[1])), (float(axis[0]), float(axis[1])),
                   (float(normal[0]), float(normal[1])), s_max - s_min,
                   float(v[basal].min()), float(v[basal].max()), s_max - s_min, 0.5 * float(v.max() - v.min()))


def _sv(shape: tuple[int, int], spacing_mm: tuple[float, float], f: LVFrame) -> tuple[FloatArray, FloatArray]:
    h, w = shape
    rr = np.arange(h, dtype=np.float64)[:, None] * spacing_mm[0] - f.origin[0]
    cc = np.arange(w, dtype=np.float64)[None, :] * spacing_mm[1] - f.origin[1]
    return rr * f.u[0] + cc * f.u[1], rr * f.n[0] + cc * f.n[1]


def _ellipse(s: FloatArray, v: FloatArray, cs: float, cv: float, rs: float, rv: float) -> BoolArray:
    out: BoolArray = ((s - cs) / rs) ** 2 + ((v - cv) / rv) ** 2 <= 1.0
    return out


def _segment_dist(s: FloatArray, v: FloatArray, a: tuple[float, float], b: tuple[float, float]) -> FloatArray:
    """Distance (mm) of every pixel to the segment a → b, points given as (s, v)."""
    ds, dv = b[0] - a[0], b[1] - a[1]
    t = np.clip(((s - a[0]) * ds + (v - a[1]) * dv) / max(ds * ds + dv * dv, 1e-9), 0.0, 1.0)
    out: FloatArray = np.hypot(s - a[0] - t * ds, v - a[1] - t * dv)
    return out


def _chambers(lv: BoolArray, s: FloatArray, v: FloatArray, f: LVFrame, view: str, spacing_mm: tuple[float, float],
              rng: np.random.Generator, wide_inflow: bool = False) -> tuple[BoolArray, BoolArray]:
    """(left atrium, other dark cavities) of the view. ``wide_inflow``: the atrium is as wide as the
    base where it meets the LV (no waist at the mitral plane)."""
    half = 0.5 * (f.v_hi - f.v_lo)
    mid = 0.5 * (f.v_hi + f.v_lo)
    # The atrium balloons below the annulus: its section at the mitral plane is about the annulus width.
    la_len = rng.uniform(30.0, 55.0)
    if wide_inflow:
        la_w, la_centre = f.half_width * rng.uniform(1.15, 1.6), rng.uniform(0.25, 0.45)
    else:
        la_w, la_centre = f.half_width * rng.uniform(0.9, 1.35), rng.uniform(0.45, 0.7)
    la = _ellipse(s, v, f.s_base + la_centre * la_len, mid + rng.uniform(-4.0, 4.0), la_len, la_w)
    la &= s > f.s_base
    others = np.zeros_like(lv)
    if view == "A4C":
        septum = rng.uniform(8.0, 13.0)
        k_len, k_wid = rng.uniform(0.7, 0.92), rng.uniform(0.55, 0.9)
        lv_half = f.half_width
        rv_mid = -lv_half - septum - k_wid * lv_half
        # RV = the LV's shape, shorter (towards the base) and narrower, beside the septum.
        s_src = f.s_base + (s - f.s_base) / k_len
        v_src = (v - rv_mid) / k_wid
        sr, sc = spacing_mm
        row = (f.origin[0] + s_src * f.u[0] + v_src * f.n[0]) / sr
        col = (f.origin[1] + s_src * f.u[1] + v_src * f.n[1]) / sc
        rv = ndimage.map_coordinates(lv.astype(np.float32), [row, col], order=1, cval=0.0) > 0.5
        tri = f.s_base - rng.uniform(3.0, 10.0)  # tricuspid annulus sits more apical
        ra_len = rng.uniform(25.0, 45.0)
        ra = _ellipse(s, v, tri + 0.75 * ra_len, rv_mid - rng.uniform(0.0, 5.0), ra_len,
                      k_wid * lv_half * rng.uniform(1.0, 1.4)) & (s > tri)
        others = (rv & (s <= tri)) | ra
        atrial_septum = rng.uniform(3.0, 7.0)
        others &= v < -lv_half - atrial_septum
    elif view == "A3C":
        ao_w = rng.uniform(9.0, 14.0)
        ao = _segment_dist(s, v, (f.s_base - 2.0, f.v_lo + 0.3 * half),
                           (f.s_base + rng.uniform(25.0, 40.0), f.v_lo - rng.uniform(10.0, 25.0))) <= ao_w
        others = ao & ~lv & (s > f.s_base - 6.0)
        la &= v > mid - 0.2 * half
    d_lv = ndimage.distance_transform_edt(~lv, sampling=spacing_mm)
    return la & ~lv, others & (d_lv > 5.0) & ~la


def echogenicity_map(lv_mask: NDArray[np.uint8], spacing_mm: tuple[float, float], rng: np.random.Generator,
                     view: str = "A4C", with_chambers: bool = True, unmarked_plane: bool | None = None) -> FloatArray:
    """(H, W) mean scattering amplitude of the scene around ``lv_mask`` (H, W) {0, 1}.
    ``unmarked_plane``: force the wide-open valve with no bright mitral plane on or off (``None``:
    drawn, :data:`UNMARKED_PLANE_FRACTION` of the scenes; forcing replaces that draw only)."""
    lv = lv_mask.astype(bool)
    shape = (int(lv.shape[0]), int(lv.shape[1]))
    hetero = smooth_noise(rng, shape, 6.0 / spacing_mm[0])
    tissue = rng.uniform(0.04, 0.25) * np.exp(0.6 * hetero)
    lung = smooth_noise(rng, shape, 12.0 / spacing_mm[0]) > rng.uniform(0.6, 1.6)
    tissue = np.where(lung, tissue * 0.15, tissue)
    f = lv_frame(lv, spacing_mm)
    if f is None:
        return np.asarray(tissue)
    s, v = _sv(shape, spacing_mm, f)
    drawn = bool(rng.uniform() < UNMARKED_PLANE_FRACTION)  # wide open valve, no bright plane (always drawn)
    unmarked = drawn if unmarked_plane is None else unmarked_plane
    if with_chambers:
        la, others = _chambers(lv, s, v, f, view, spacing_mm, rng, wide_inflow=unmarked)
    else:
        la, others = np.zeros_like(lv), np.zeros_like(lv)
    cavities = lv | la | others
    d_lv = ndimage.distance_transform_edt(~lv, sampling=spacing_mm)
    d_any = ndimage.distance_transform_edt(~cavities, sampling=spacing_mm)
    # Myocardium: thicker at the base than at the apex, stops at the mitral plane.
    wall = rng.uniform(7.0, 13.0) * (0.75 + 0.25 * np.clip(s / max(f.length, 1.0), 0.0, 1.0))
    myo = (d_lv > 0) & (d_lv <= wall) & (s <= f.s_base + 1.5)
    other_wall = (d_any > 0) & (d_any <= rng.uniform(3.0, 7.0)) & ~myo
    heart = myo | other_wall | cavities
    d_heart = ndimage.distance_transform_edt(~heart, sampling=spacing_mm)
    peri = np.exp(-(((d_heart - rng.uniform(1.0, 3.0)) / rng.uniform(0.8, 2.0)) ** 2)) * (d_heart > 0)

    texture = np.exp(rng.uniform(0.3, 0.6) * smooth_noise(rng, shape, 1.5 / spacing_mm[0]))  # fibre-scale
    myo_level = rng.uniform(0.1, 0.45)
    echo = np.where(myo, myo_level * texture, tissue)
    echo = np.where(other_wall, rng.uniform(0.1, 0.5) * texture, echo)
    echo = echo + rng.uniform(0.4, 2.0) * peri
    # Endocardial border: a thin brighter rim (specular) of random strength.
    echo = echo + rng.uniform(0.0, 0.6) * np.exp(-(((d_lv - 0.8) / 0.8) ** 2)) * (d_lv > 0) * (s <= f.s_base)

    blood = rng.uniform(0.01, 0.09) * np.exp(0.5 * smooth_noise(rng, shape, 4.0 / spacing_mm[0]))
    echo = np.where(cavities, blood, echo)
    # Trabeculae near the apex and lateral wall; papillary muscles on the lateral wall (labelled LV).
    d_in = ndimage.distance_transform_edt(lv, sampling=spacing_mm)
    near = lv & (d_in <= rng.uniform(2.0, 5.0)) & ((s < 0.35 * f.length) | (v > 0.3 * (f.v_hi - f.v_lo) / 2))
    trab = near & (smooth_noise(rng, shape, 1.0 / spacing_mm[0]) > rng.uniform(0.3, 1.2))
    echo = np.where(trab, rng.uniform(0.15, 0.6) * texture, echo)
    for _ in range(int(rng.integers(0, 3))):
        sp = f.length * rng.uniform(0.4, 0.65)
        vp = f.v_hi - rng.uniform(3.0, 8.0)
        pap = _ellipse(s, v, sp, vp, rng.uniform(6.0, 12.0), rng.uniform(2.5, 5.0)) & lv
        echo = np.where(pap, rng.uniform(0.2, 0.7) * texture, echo)
    # Mitral valve: annulus knots; leaflets open into the LV or closed across the plane.
    ann = [(f.s_base, f.v_lo), (f.s_base, f.v_hi)]
    for a in ann:
        knot = rng.uniform(0.1, 0.5) if unmarked else rng.uniform(0.5, 2.0)
        echo = echo + knot * np.exp(-(np.hypot(s - a[0], v - a[1]) / rng.uniform(2.0, 3.5)) ** 2)
    thick = rng.uniform(0.7, 1.6)
    leaflet = rng.uniform(0.0, 0.4) if unmarked else rng.uniform(0.2, 1.8)
    if unmarked or rng.uniform() < 0.6:  # open (diastole): leaflets hang towards the apex
        for a, sign in ((ann[0], 1.0), (ann[1], -1.0)):
            ln = rng.uniform(10.0, 20.0)
            ang = np.radians(rng.uniform(0.0, 12.0) if unmarked else rng.uniform(5.0, 35.0))
            tip = (a[0] - ln * np.cos(ang), a[1] + sign * ln * np.sin(ang))
            echo = echo + leaflet * np.exp(-((_segment_dist(s, v, a, tip) / thick) ** 2))
    else:  # closed (systole): a line across the plane, slightly bowed into the atrium
        bow = rng.uniform(0.0, 5.0)
        mid = 0.5 * (ann[0][1] + ann[1][1])
        for a in ann:
            echo = echo + leaflet * np.exp(-((_segment_dist(s, v, a, (f.s_base + bow, mid)) / thick) ** 2))
    out: FloatArray = np.maximum(echo, 1e-4)
    return out
