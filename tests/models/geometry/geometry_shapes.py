"""Small analytic test meshes shared by the geometry tests (box, torus, two spheres)."""

from __future__ import annotations

import numpy as np

from models.geometry.mesh import Mesh, icosphere


def box_mesh(half: tuple[float, float, float], centre: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> Mesh:
    """Axis-aligned box with half-extents ``half``: 8 vertices, 12 outward-wound triangles."""
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
    faces = np.array(
        [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]],
        dtype=np.int64,
    )
    return Mesh(corners * np.asarray(half) + np.asarray(centre), faces)


def torus_mesh(major: float, minor: float, n_major: int = 48, n_minor: int = 24) -> Mesh:
    """Torus around +z, outward wound."""
    u = np.linspace(0, 2 * np.pi, n_major, endpoint=False)
    v = np.linspace(0, 2 * np.pi, n_minor, endpoint=False)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    pts = np.stack(
        [(major + minor * np.cos(vv)) * np.cos(uu), (major + minor * np.cos(vv)) * np.sin(uu), minor * np.sin(vv)],
        -1,
    ).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n_major), np.arange(n_minor), indexing="ij")
    a = i * n_minor + j
    b = ((i + 1) % n_major) * n_minor + j
    c = ((i + 1) % n_major) * n_minor + (j + 1) % n_minor
    d = i * n_minor + (j + 1) % n_minor
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return Mesh(pts, faces)


def two_spheres(radius: float, gap: float, subdivisions: int = 3) -> Mesh:
    """Two disjoint spheres on the x axis, centres at ±(radius + gap / 2)."""
    s = icosphere(subdivisions, radius)
    off = np.array([radius + gap / 2, 0.0, 0.0])
    return Mesh(np.concatenate([s.vertices - off, s.vertices + off]),
                np.concatenate([s.faces, s.faces + len(s.vertices)]))


def winding_number(mesh: Mesh, points: np.ndarray) -> np.ndarray:
    """Brute-force generalised winding number (Van Oosterom–Strackee solid angles), (N,)."""
    tri = mesh.triangles
    out = np.empty(len(points))
    for i, x in enumerate(points):
        a, b, c = (tri[:, k] - x for k in range(3))
        la, lb, lc = (np.linalg.norm(u, axis=1) for u in (a, b, c))
        num = np.einsum("ij,ij->i", a, np.cross(b, c))
        den = (la * lb * lc + np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", b, c) * la
               + np.einsum("ij,ij->i", c, a) * lb)
        out[i] = 2.0 * np.arctan2(num, den).sum() / (4.0 * np.pi)
    return out
