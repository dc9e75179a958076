"""The fixed-topology LV cavity template shared by every subject and every frame.

The cavity is one closed tube of vertex rings between two poles:

* vertex 0 is the **apex pole** (kept at the origin);
* ``n_wall`` **wall rings** of ``n_phi`` vertices from just above the apex up to the mitral
  annulus (the last wall ring, the *base ring*);
* ``n_cap`` **cap rings** shrinking from the base ring toward the centre of the mitral annulus;
* the last vertex is the **mitral centre pole**.

Rings are joined by quad strips (two triangles per quad) and closed by triangle fans at the
poles, so the mesh is a topological sphere (Euler number 2), watertight and wound outward
(φ increases counter-clockwise about +z, rings go from apex to base). With the defaults
(64 × 32 wall, 7 cap rings) it has 2 498 vertices and 4 992 faces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class Template:
    """Topology and material coordinates of the cavity template."""

    n_phi: int = 64
    n_wall: int = 32
    n_cap: int = 7
    faces: IntArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.n_phi < 8 or self.n_wall < 4 or self.n_cap < 1:
            raise ValueError("Template needs n_phi >= 8, n_wall >= 4 and n_cap >= 1")
        object.__setattr__(self, "faces", _build_faces(self.n_phi, self.n_wall + self.n_cap))

    @property
    def n_vertices(self) -> int:
        return 2 + (self.n_wall + self.n_cap) * self.n_phi

    @property
    def phi(self) -> FloatArray:
        """Ring angles (n_phi,) in radians, counter-clockwise about +z from +x."""
        return 2.0 * np.pi * np.arange(self.n_phi) / self.n_phi

    @property
    def wall_t(self) -> FloatArray:
        """Fraction (n_wall,) of the apex→base parameter range of each wall ring, (0, 1]."""
        return np.arange(1, self.n_wall + 1, dtype=np.float64) / self.n_wall

    @property
    def cap_rho(self) -> FloatArray:
        """Relative radius (n_cap,) of each cap ring, decreasing in (0, 1)."""
        return 1.0 - np.arange(1, self.n_cap + 1, dtype=np.float64) / (self.n_cap + 1)

    @property
    def wall_slice(self) -> slice:
        """Vertex rows of the wall rings (ring-major, n_wall · n_phi vertices)."""
        return slice(1, 1 + self.n_wall * self.n_phi)

    @property
    def base_slice(self) -> slice:
        """Vertex rows of the base (mitral annulus) ring."""
        start = 1 + (self.n_wall - 1) * self.n_phi
        return slice(start, start + self.n_phi)

    @property
    def cap_slice(self) -> slice:
        """Vertex rows of the cap rings (not the centre pole)."""
        start = 1 + self.n_wall * self.n_phi
        return slice(start, start + self.n_cap * self.n_phi)

    @property
    def centre_index(self) -> int:
        return self.n_vertices - 1

    def is_wall(self) -> NDArray[np.bool_]:
        """(N,) True for the apex pole and wall-ring vertices (the myocardial surface)."""
        out = np.zeros(self.n_vertices, dtype=bool)
        out[0] = True
        out[self.wall_slice] = True
        return out

    def assemble(self, wall: FloatArray, cap: FloatArray, centre: FloatArray) -> FloatArray:
        """Vertex array (N, 3) from wall (n_wall, n_phi, 3), cap (n_cap, n_phi, 3), centre (3,);
        the apex pole is the origin."""
        return np.concatenate(
            [np.zeros((1, 3)), wall.reshape(-1, 3), cap.reshape(-1, 3), np.asarray(centre).reshape(1, 3)]
        )


@lru_cache(maxsize=8)
def _faces_cached(n_phi: int, n_rings: int) -> bytes:
    apex, centre = 0, 1 + n_rings * n_phi
    j = np.arange(n_phi)
    jn = (j + 1) % n_phi

    def ring(i: int) -> IntArray:
        return 1 + i * n_phi + j

    def ring_next(i: int) -> IntArray:
        return 1 + i * n_phi + jn

    parts = [np.stack([np.full(n_phi, apex), ring_next(0), ring(0)], axis=1)]
    for i in range(n_rings - 1):
        a, an, b, bn = ring(i), ring_next(i), ring(i + 1), ring_next(i + 1)
        parts.append(np.stack([a, an, bn], axis=1))
        parts.append(np.stack([a, bn, b], axis=1))
    last = n_rings - 1
    parts.append(np.stack([ring(last), ring_next(last), np.full(n_phi, centre)], axis=1))
    return np.concatenate(parts).astype(np.int64).tobytes()


def _build_faces(n_phi: int, n_rings: int) -> IntArray:
    faces: IntArray = np.frombuffer(_faces_cached(n_phi, n_rings), dtype=np.int64).reshape(-1, 3).copy()
    faces.setflags(write=False)
    return faces


DEFAULT_TEMPLATE = Template()
