"""Marching cubes in mm: a watertight, outward-wound mesh from a sampled signed field.

Convention: the field is negative inside and positive outside (a signed distance), the
surface is its ``level`` set. ``values[i, j, k]`` is the sample at
``origin + (i, j, k) * spacing`` (axis 0 → x, 1 → y, 2 → z, all mm).

Watertightness: if the inside region touches the grid border, marching cubes leaves the
surface open there. :func:`marching_cubes` therefore pads the grid with one layer of a
strictly positive (outside) value before extracting and clamps the vertices to the grid box,
which caps any such opening with a flat patch on the border face of the original grid (the
result is then the surface of ``inside ∩ grid box``). It then
merges duplicate vertices, drops degenerate faces and orients the faces outward (positive
enclosed volume). skimage's lewiner variant can emit a few non-manifold configurations in
ambiguous cells; those are reported by :func:`models.geometry.mesh.is_watertight`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from skimage import measure

from models.errors import ErrorCode, ModelError
from models.geometry.mesh import Mesh, mesh_volume_mm3

FloatArray = NDArray[np.float64]


def sdf_grid_points(
    bounds_min: FloatArray, bounds_max: FloatArray, resolution: int | tuple[int, int, int]
) -> tuple[FloatArray, FloatArray, FloatArray, tuple[int, int, int]]:
    """A regular grid covering the box ``[bounds_min, bounds_max]`` (mm), end points included.

    Returns ``(points (D*H*W, 3), origin (3,), spacing (3,), shape (D, H, W))`` with points in
    C order, so ``values = f(points).reshape(shape)`` is ready for :func:`marching_cubes`.
    """
    lo = np.asarray(bounds_min, dtype=np.float64).reshape(3)
    hi = np.asarray(bounds_max, dtype=np.float64).reshape(3)
    res = (resolution,) * 3 if isinstance(resolution, int) else tuple(resolution)
    if len(res) != 3 or min(res) < 2 or not np.all(hi > lo):
        raise ValueError("sdf_grid_points needs bounds_max > bounds_min and >= 2 samples per axis")
    shape = (int(res[0]), int(res[1]), int(res[2]))
    spacing = (hi - lo) / (np.asarray(shape, dtype=np.float64) - 1.0)
    axes = [lo[i] + spacing[i] * np.arange(shape[i]) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return grid, lo, spacing, shape


def _merge_vertices(verts: FloatArray, faces: NDArray[np.int64]) -> tuple[FloatArray, NDArray[np.int64]]:
    """Weld bit-identical vertices and drop faces that collapse."""
    uniq, inverse = np.unique(verts, axis=0, return_inverse=True)
    f = inverse.ravel()[faces]
    ok = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    f = f[ok]
    used = np.zeros(len(uniq), dtype=bool)
    used[f.ravel()] = True
    remap = np.cumsum(used) - 1
    return uniq[used], remap[f].astype(np.int64)


def marching_cubes(
    values: FloatArray | Callable[[FloatArray], FloatArray],
    origin_mm: FloatArray,
    spacing_mm: float | FloatArray,
    level: float = 0.0,
    shape: tuple[int, int, int] | None = None,
) -> Mesh:
    """The ``level`` surface of a field sampled on a regular grid, as an outward-wound mesh in mm.

    ``values`` is either the sampled grid (D, H, W) or a callable mapping points (N, 3) mm to
    values (N,), evaluated on the grid of ``shape``. Negative = inside. Raises
    :class:`ModelError` if the field has no crossing of ``level``.
    """
    origin = np.asarray(origin_mm, dtype=np.float64).reshape(3)
    spacing = np.broadcast_to(np.asarray(spacing_mm, dtype=np.float64), (3,)).copy()
    if callable(values):
        if shape is None:
            raise ValueError("marching_cubes with a callable field needs the grid shape")
        axes = [origin[i] + spacing[i] * np.arange(shape[i]) for i in range(3)]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
        grid = np.asarray(values(pts), dtype=np.float64).reshape(shape)
    else:
        grid = np.asarray(values, dtype=np.float64)
    if grid.ndim != 3 or min(grid.shape) < 2:
        raise ValueError(f"marching_cubes needs a (D, H, W) grid, got shape {grid.shape}")
    if not np.isfinite(grid).all():
        raise ModelError("field has non-finite samples", code=ErrorCode.RECONSTRUCTION_FAILED)
    if not (grid.min() < level < grid.max()):
        raise ModelError("field has no surface at the requested level", code=ErrorCode.RECONSTRUCTION_FAILED)
    outside = max(float(grid.max()), level) + 1.0
    padded = np.pad(grid, 1, mode="constant", constant_values=outside)
    verts, faces, _, _ = measure.marching_cubes(  # type: ignore[no-untyped-call]
        padded, level=level, spacing=tuple(spacing)
    )
    verts = verts.astype(np.float64) + origin - spacing  # undo the one-sample pad
    # Cap vertices sit on grid edges between the border layer and the pad: put them on the border.
    verts = np.clip(verts, origin, origin + spacing * (np.asarray(grid.shape) - 1))
    v, f = _merge_vertices(verts, faces.astype(np.int64))
    mesh = Mesh(v, f)
    if mesh_volume_mm3(mesh) < 0:  # skimage's winding depends on the gradient direction
        mesh = Mesh(v, f[:, ::-1].copy())
    return mesh
