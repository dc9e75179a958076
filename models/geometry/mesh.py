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
    a, b, c = (mesh.triangles[:, i] for i in range(3))
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
