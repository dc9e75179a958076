"""Bring LV meshes into the canonical LV frame (see frames.py and docs/geometry.md).

Canonical frame: mm, apex at the origin, +z from the apex to the mitral-annulus centre,
+x toward the lateral wall as seen in A4C (screen right), +y = z × x.

Also the reader of the real biv-me case (``shared/data/real-lv-4d``) and the geometric
identification of its two valve caps (mitral and aortic), used to check the view convention:
the aortic valve must lie in (near) the A3C plane, i.e. at about −120° about +z.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse import csgraph

from models.errors import ErrorCode, InputError
from models.geometry.mesh import Mesh, face_normals

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

CREASE_ANGLES_DEG = (25.0, 20.0, 30.0, 35.0)
"""Dihedral thresholds tried, in order, to split a capped LV cavity into smooth regions."""


def canonical_transform(
    apex: FloatArray, mitral_centre: FloatArray, lateral_hint: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Rigid map ``x_canonical = R @ x + t`` (R (3, 3) proper rotation, t (3,) mm).

    The apex goes to the origin, the mitral centre onto +z, and ``lateral_hint`` (a direction,
    (3,)) projected perpendicular to the long axis becomes +x; +y = z × x.
    """
    apex = np.asarray(apex, dtype=np.float64).reshape(3)
    z = np.asarray(mitral_centre, dtype=np.float64).reshape(3) - apex
    if np.linalg.norm(z) < 1e-9:
        raise ValueError("apex and mitral centre coincide")
    z /= np.linalg.norm(z)
    hint = np.asarray(lateral_hint, dtype=np.float64).reshape(3)
    x = hint - (hint @ z) * z
    if np.linalg.norm(x) < 1e-9 * max(1.0, float(np.linalg.norm(hint))):
        raise ValueError("lateral hint is parallel to the long axis")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    r = np.stack([x, y, z])  # rows: the canonical axes expressed in the source frame
    return r, -r @ apex


def find_apex(vertices: FloatArray, mitral_centre: FloatArray, axis: FloatArray | None = None) -> int:
    """Index of the apex: the vertex farthest from the mitral centre along the long axis.

    Without ``axis`` (a direction from the base toward the apex) the axis is found by fixed
    point iteration, starting from the vertex farthest from the mitral centre: the axis is
    the direction mitral centre → current apex, the apex the vertex with the largest
    projection on it.
    """
    v = np.asarray(vertices, dtype=np.float64)
    mc = np.asarray(mitral_centre, dtype=np.float64).reshape(3)
    rel = v - mc
    if axis is not None:
        a = np.asarray(axis, dtype=np.float64).reshape(3)
        return int(np.argmax(rel @ (a / np.linalg.norm(a))))
    apex = int(np.argmax(np.einsum("ij,ij->i", rel, rel)))
    for _ in range(20):
        a = rel[apex] / np.linalg.norm(rel[apex])
        new = int(np.argmax(rel @ a))
        if new == apex:
            break
        apex = new
    return apex


def _face_pairs(faces: IntArray, n_vertices: int) -> IntArray:
    """(E, 2) pairs of faces sharing an edge (closed manifold mesh: each edge has two faces)."""
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.minimum(half[:, 0], half[:, 1]) * n_vertices + np.maximum(half[:, 0], half[:, 1])
    order = np.argsort(key, kind="stable")
    face_id = np.tile(np.arange(len(faces)), 3)[order]
    if not np.array_equal(key[order][0::2], key[order][1::2]):
        raise ValueError("mesh is not a closed 2-manifold")
    return np.stack([face_id[0::2], face_id[1::2]], axis=1)


def smooth_regions(mesh: Mesh, crease_deg: float) -> IntArray:
    """Label (F,) of the smooth regions of ``mesh``: faces connected across edges whose
    dihedral angle is below ``crease_deg``."""
    n = face_normals(mesh)
    pairs = _face_pairs(mesh.faces, len(mesh.vertices))
    cos = np.einsum("ij,ij->i", n[pairs[:, 0]], n[pairs[:, 1]])
    keep = cos > math.cos(math.radians(crease_deg))
    f = len(mesh.faces)
    graph = sp.coo_matrix((np.ones(int(keep.sum())), (pairs[keep, 0], pairs[keep, 1])), shape=(f, f))
    _, labels = csgraph.connected_components(graph, directed=False)
    return labels.astype(np.int64)


def find_valve_caps(mesh: Mesh, mitral_vertex_ids: IntArray) -> tuple[IntArray, IntArray]:
    """Face ids of the mitral cap and of the aortic-valve cap of a capped LV cavity.

    The cavity is split into smooth regions at its sharp creases (the valve rims meet the
    endocardium at 30–65°, the endocardium itself bends < 25° between neighbouring faces).
    The mitral cap is the region whose faces use only ``mitral_vertex_ids``; the aortic cap
    is the largest other region apart from the endocardium (the largest region), and it must
    be a flat disc: every vertex within 15 % of the disc radius of its best-fit plane.
    """
    mitral_set = np.zeros(len(mesh.vertices), dtype=bool)
    mitral_set[np.asarray(mitral_vertex_ids, dtype=np.int64)] = True
    all_mitral: NDArray[np.bool_] = np.asarray(mitral_set[mesh.faces].all(axis=1))
    for crease in CREASE_ANGLES_DEG:
        labels = smooth_regions(mesh, crease)
        counts = np.bincount(labels)
        endo = int(np.argmax(counts))
        mitral_label = int(np.bincount(labels[all_mitral], minlength=len(counts)).argmax())
        mitral = np.nonzero(labels == mitral_label)[0]
        if mitral_label == endo or not all_mitral[mitral].all():
            continue
        others = [int(c) for c in np.argsort(-counts) if c not in (endo, mitral_label) and counts[c] >= 6]
        if not others:
            continue
        aortic = np.nonzero(labels == others[0])[0]
        pts = mesh.vertices[np.unique(mesh.faces[aortic])]
        centred = pts - pts.mean(axis=0)
        _, sv, _ = np.linalg.svd(centred, full_matrices=False)
        radius = math.sqrt(float(sv[0] ** 2 + sv[1] ** 2) / len(pts))
        if sv[2] / math.sqrt(len(pts)) < 0.15 * radius:
            return mitral.astype(np.int64), aortic.astype(np.int64)
    raise ValueError("could not identify the mitral and aortic caps")


def cap_centre(mesh: Mesh, face_ids: IntArray) -> FloatArray:
    """Area-weighted centroid (3,) of a set of faces."""
    tri = mesh.triangles[face_ids]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    out: FloatArray = (tri.mean(axis=1) * area[:, None]).sum(axis=0) / area.sum()
    return out


def angle_about_z_deg(point: FloatArray) -> float:
    """Azimuth of a canonical point about +z, degrees in (−180, 180]; A4C lateral is 0°."""
    p = np.asarray(point, dtype=np.float64).reshape(3)
    return math.degrees(math.atan2(p[1], p[0]))


def load_real_lv_4d(path: str | Path) -> dict[str, Any]:
    """Read the biv-me 4D LV cavity (``bivme_patient1_lv_endo.npz``) into the canonical frame.

    The ED frame fixes the frame for the whole cycle: mitral centre = centroid of the
    ``base_idx`` vertices, apex = :func:`find_apex` over the endocardial vertices (the cap
    vertices excluded), +x = −(``ref_dir`` ⟂ z), ``ref_dir`` pointing from the mitral toward
    the tricuspid valve, i.e. toward the septum/RV, which an A4C screen shows on the left.

    Returns: ``vertices`` (T, V, 3) float64 canonical mm, ``faces`` (F, 3) int64,
    ``volumes_ml`` (T,), ``frame_times_ms`` (T,), ``ed_frame``, ``es_frame``, ``base_idx``,
    ``rotation`` (3, 3) and ``translation`` (3,) (x_canonical = R x + t), ``apex_index``,
    ``mitral_faces`` / ``aortic_faces`` (face ids), ``mitral_centre`` / ``aortic_centre``
    (canonical, ED) and ``aortic_angle_deg`` (azimuth of the aortic centre about +z).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError("real LV case not found", code=ErrorCode.UNSUPPORTED_FORMAT, field=p.name)
    with np.load(p) as d:
        verts = np.asarray(d["vertices"], dtype=np.float64)
        faces = np.asarray(d["faces"], dtype=np.int64)
        volumes = np.asarray(d["volumes_ml"], dtype=np.float64)
        times = np.asarray(d["frame_times_ms"], dtype=np.float64)
        ed, es = int(d["ed_frame"]), int(d["es_frame"])
        base_idx = np.asarray(d["base_idx"], dtype=np.int64)
        ref_dir = np.asarray(d["ref_dir"], dtype=np.float64)
    ed_mesh = Mesh(verts[ed], faces)
    mitral_faces, aortic_faces = find_valve_caps(ed_mesh, base_idx)
    mitral_centre = verts[ed, base_idx].mean(axis=0)
    cap_vertices = np.unique(np.concatenate([faces[mitral_faces].ravel(), faces[aortic_faces].ravel()]))
    endo = np.setdiff1d(np.arange(verts.shape[1]), cap_vertices)
    apex_index = int(endo[find_apex(verts[ed, endo], mitral_centre)])
    r, t = canonical_transform(verts[ed, apex_index], mitral_centre, -ref_dir)
    canonical = verts @ r.T + t
    ed_canonical = Mesh(canonical[ed], faces)
    aortic_centre = cap_centre(ed_canonical, aortic_faces)
    return {
        "vertices": canonical,
        "faces": faces,
        "volumes_ml": volumes,
        "frame_times_ms": times,
        "ed_frame": ed,
        "es_frame": es,
        "base_idx": base_idx,
        "rotation": r,
        "translation": t,
        "apex_index": apex_index,
        "mitral_faces": mitral_faces,
        "aortic_faces": aortic_faces,
        "mitral_centre": canonical[ed, base_idx].mean(axis=0),
        "aortic_centre": aortic_centre,
        "aortic_angle_deg": angle_about_z_deg(aortic_centre),
    }
