"""Triangle meshes in mm: the one mesh type of Echo4D, exact volume and watertightness."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.errors import ErrorCode, ModelError


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh: vertices (N, 3) float64 in mm, faces (F, 3) int64, outward winding."""

    vertices: NDArray[np.float64]
    faces: NDArray[np.int64]

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(self.vertices, dtype=np.float64)
        f = np.ascontiguousarray(self.faces, dtype=np.int64)
        if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
            raise ValueError(f"Mesh needs vertices (N, 3) and faces (F, 3), got {v.shape} and {f.shape}")
        if f.size and (f.min() < 0 or f.max() >= len(v)):
            raise ValueError("Mesh faces index vertices out of range")
        object.__setattr__(self, "vertices", v)
        object.__setattr__(self, "faces", f)

    @property
    def triangles(self) -> NDArray[np.float64]:
        """Corner coordinates (F, 3, 3)."""
        return self.vertices[self.faces]

    def with_vertices(self, vertices: NDArray[np.float64]) -> Mesh:
        """Same topology, new vertex positions (N, 3)."""
        return Mesh(vertices, self.faces)


def mesh_volume_mm3(mesh: Mesh) -> float:
    """Exact enclosed volume (mm³) of a closed, outward-wound mesh (divergence theorem)."""
    v, f = mesh.vertices, mesh.faces
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def mesh_volume_ml(mesh: Mesh) -> float:
    """Enclosed volume in millilitres (1 mL = 1000 mm³)."""
    return mesh_volume_mm3(mesh) / 1000.0


def edge_use_counts(faces: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Directed half-edges (3F, 2) and how often each undirected edge is used."""
    half = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    undirected = np.sort(half, axis=1)
    _, inverse, counts = np.unique(undirected, axis=0, return_inverse=True, return_counts=True)
    return half, counts[inverse.ravel()]


def is_watertight(mesh: Mesh) -> bool:
    """True when every edge is shared by exactly two faces with opposite orientation
    (closed, manifold, consistently wound) and the mesh has no degenerate face."""
    f = mesh.faces
    if len(f) == 0 or (f[:, 0] == f[:, 1]).any() or (f[:, 1] == f[:, 2]).any() or (f[:, 0] == f[:, 2]).any():
        return False
    half, uses = edge_use_counts(f)
    if not (uses == 2).all():
        return False
    # Consistent winding: each directed half-edge appears exactly once.
    return len(np.unique(half, axis=0)) == len(half)


def require_watertight(mesh: Mesh, what: str = "mesh") -> None:
    """Raise :class:`ModelError` if ``mesh`` is not closed and consistently wound."""
    if not is_watertight(mesh):
        raise ModelError(f"{what} is not watertight", code=ErrorCode.RECONSTRUCTION_FAILED)


def transformed(mesh: Mesh, rotation: NDArray[np.float64], translation: NDArray[np.float64]) -> Mesh:
    """Rigidly moved copy: vertices x → R·x + t (R (3, 3) proper rotation, t (3,) mm)."""
    r = np.asarray(rotation, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64).reshape(3)
    return mesh.with_vertices(mesh.vertices @ r.T + t)


def face_normals(mesh: Mesh) -> NDArray[np.float64]:
    """Unit outward face normals (F, 3) (zero for degenerate faces)."""
    tri = mesh.triangles
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    out: NDArray[np.float64] = np.divide(n, length, out=np.zeros_like(n), where=length > 0)
    return out


def surface_area_mm2(mesh: Mesh) -> float:
    """Total surface area (mm²)."""
    tri = mesh.triangles
    return float(0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum())


def icosphere(subdivisions: int = 3, radius: float = 1.0) -> Mesh:
    """Watertight, outward-wound geodesic sphere: 20·4^subdivisions faces, centred at 0."""
    if subdivisions < 0:
        raise ValueError("subdivisions must be >= 0")
    g = (1.0 + 5.0**0.5) / 2.0
    v = np.array(
        [[-1, g, 0], [1, g, 0], [-1, -g, 0], [1, -g, 0], [0, -1, g], [0, 1, g],
         [0, -1, -g], [0, 1, -g], [g, 0, -1], [g, 0, 1], [-g, 0, -1], [-g, 0, 1]],
        dtype=np.float64,
    )
    f = np.array(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
         [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]],
        dtype=np.int64,
    )
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for _ in range(subdivisions):
        n_v = len(v)
        edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        key = np.minimum(edges[:, 0], edges[:, 1]) * n_v + np.maximum(edges[:, 0], edges[:, 1])
        uniq, inverse = np.unique(key, return_inverse=True)
        a, b = uniq // n_v, uniq % n_v
        mid = v[a] + v[b]
        v = np.concatenate([v, mid / np.linalg.norm(mid, axis=1, keepdims=True)])
        m = (inverse.ravel() + n_v).reshape(3, -1)  # midpoints of edges 01, 12, 20 per face
        m01, m12, m20 = m
        f = np.concatenate([
            np.stack([f[:, 0], m01, m20], 1), np.stack([f[:, 1], m12, m01], 1),
            np.stack([f[:, 2], m20, m12], 1), np.stack([m01, m12, m20], 1),
        ])
    return Mesh(v * radius, f)


def ellipsoid(
    semi_axes: tuple[float, float, float], subdivisions: int = 3, centre: tuple[float, float, float] = (0, 0, 0)
) -> Mesh:
    """Axis-aligned ellipsoid mesh (a scaled :func:`icosphere`), vertices on the surface."""
    s = icosphere(subdivisions)
    return s.with_vertices(s.vertices * np.asarray(semi_axes, dtype=np.float64) + np.asarray(centre, float))
