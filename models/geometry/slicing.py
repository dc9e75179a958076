"""Exact planar cross-sections of closed meshes: polygons in the plane and filled pixel masks.

The plane is the ``z = 0`` plane of a :class:`~models.geometry.frames.ProbePose` (in-plane
coordinates ``p = (lateral, depth)`` mm, see ``frames.py``). The cut is computed per mesh
edge: every edge whose end points lie on opposite sides of the plane yields one
intersection point, interpolated from its non-negative end toward its negative end, so the
point is bit-identical in the two faces sharing the edge. Each crossed face contributes one
segment; chained through the shared edges the segments form closed loops (several loops are
possible, e.g. a plane that cuts a bent cavity twice).

Vertices exactly on the plane: a vertex with signed distance ``d == 0`` is classified as
lying on the positive side, which is the same as moving the plane by an infinitesimal
``-ε`` along its normal (symbolic perturbation). The cut is then always a set of closed
curves; an on-plane vertex simply becomes a loop point (or a zero-length segment, which
crosses no scanline).

Filling is an exact even-odd scanline fill at pixel centres: for image row ``r`` the
crossings of the horizontal line ``row = r`` with every segment are computed with the
half-open rule ``min(r0, r1) <= r < max(r0, r1)`` (so a loop vertex on a scanline is counted
exactly once), sorted per row, and the pixel centres ``c`` with ``x_2k <= c < x_2k+1`` are set.
A pixel is 1 if and only if its centre lies inside the cross-section (up to that half-open
tie-break for centres exactly on the boundary); nothing leaks.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from models.errors import ErrorCode, ModelError
from models.geometry.frames import ImagePlane, ProbePose
from models.geometry.mesh import Mesh

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def _plane_segments(mesh: Mesh, pose: ProbePose) -> tuple[FloatArray, FloatArray, IntArray, IntArray]:
    """Intersection segments of ``mesh`` with the pose's plane.

    Returns ``(start, end, start_edge, end_edge)``: in-plane end points (S, 2) mm and, for
    chaining, an integer key (S,) of the mesh edge each end point lies on. Segments are
    oriented consistently (each loop is traversed in one direction; for an outward-wound
    mesh outer boundaries come out counter-clockwise in (lateral, depth) coordinates).
    """
    q = pose.world_to_plane(mesh.vertices)  # (N, 3): lateral, depth, signed offset / scale
    positive = q[:, 2] >= 0.0  # on-plane vertices count as positive (plane moved by -ε)
    f = mesh.faces
    side = positive[f]  # (F, 3)
    n_pos = side.sum(axis=1)
    crossed = (n_pos == 1) | (n_pos == 2)
    if not crossed.any():
        empty = np.zeros((0, 2))
        none = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), none, none.copy()
    fc = f[crossed]  # (S, 3)
    sc = side[crossed]
    # Directed face edges k: fc[:, k] -> fc[:, (k + 1) % 3].
    a = fc
    b = np.roll(fc, -1, axis=1)
    sa = sc
    sb = np.roll(sc, -1, axis=1)
    leaving = sa & ~sb  # positive -> negative
    entering = ~sa & sb  # negative -> positive
    k_leave = np.argmax(leaving, axis=1)
    k_enter = np.argmax(entering, axis=1)
    rows = np.arange(len(fc))

    def edge_point(k: IntArray) -> tuple[FloatArray, IntArray]:
        va, vb = a[rows, k], b[rows, k]
        pos = np.where(positive[va], va, vb)  # interpolate from the positive end, always
        neg = np.where(positive[va], vb, va)
        dp, dn = q[pos, 2], q[neg, 2]
        t = dp / (dp - dn)  # dp >= 0 > dn, so the denominator is > 0
        pts = q[pos, :2] + t[:, None] * (q[neg, :2] - q[pos, :2])
        key = np.minimum(va, vb) * len(q) + np.maximum(va, vb)
        return pts, key

    p_enter, key_enter = edge_point(k_enter)
    p_leave, key_leave = edge_point(k_leave)
    return p_leave, p_enter, key_leave, key_enter


def slice_polygons(mesh: Mesh, pose: ProbePose) -> list[FloatArray]:
    """Closed cross-section loops of a watertight ``mesh`` with the plane of ``pose``.

    Returns a list of (K, 2) arrays of in-plane (lateral, depth) coordinates in mm (the
    plane's own units, i.e. before the pose scale), one per loop, without repeating the first
    point. Raises :class:`ModelError` if the cut does not close (the mesh is not watertight).
    """
    start, _, k_start, k_end = _plane_segments(mesh, pose)
    n = len(start)
    if n == 0:
        return []
    order = np.argsort(k_start, kind="stable")
    sorted_keys = k_start[order]
    pos = np.searchsorted(sorted_keys, k_end)
    if (pos >= n).any() or not np.array_equal(sorted_keys[np.minimum(pos, n - 1)], k_end):
        raise ModelError("mesh cross-section does not close (mesh is not watertight)",
                         code=ErrorCode.RECONSTRUCTION_FAILED)
    successor = order[pos]
    visited = np.zeros(n, dtype=bool)
    loops: list[FloatArray] = []
    for s0 in range(n):
        if visited[s0]:
            continue
        chain: list[int] = []
        s = s0
        while not visited[s]:
            visited[s] = True
            chain.append(s)
            s = int(successor[s])
        if s != s0:
            raise ModelError("mesh cross-section is not a set of simple loops",
                             code=ErrorCode.RECONSTRUCTION_FAILED)
        pts = start[np.asarray(chain)]
        # Drop repeated points (zero-length segments at on-plane vertices).
        keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
        if keep.sum() >= 3:
            loops.append(pts[keep])
    return loops


def fill_segments(
    start_rc: FloatArray, end_rc: FloatArray, shape: tuple[int, int]
) -> NDArray[np.uint8]:
    """Even-odd scanline fill of closed polygon edges given in (row, col) pixel coordinates.

    ``start_rc``, ``end_rc``: (S, 2) segment end points, any order, forming closed loops.
    Returns (H, W) uint8 with 1 where the pixel centre ``(r, c)`` is inside.
    """
    h, w = shape
    mask = np.zeros((h, w), dtype=np.uint8)
    if len(start_rc) == 0:
        return mask
    r0, c0 = start_rc[:, 0], start_rc[:, 1]
    r1, c1 = end_rc[:, 0], end_rc[:, 1]
    lo = np.minimum(r0, r1)
    hi = np.maximum(r0, r1)
    # Scanlines y (integers) with lo <= y < hi, clipped to the image rows.
    y_first = np.maximum(np.ceil(lo), 0.0)
    y_stop = np.minimum(np.ceil(hi), float(h))
    count = np.maximum(y_stop - y_first, 0).astype(np.int64)
    total = int(count.sum())
    if total == 0:
        return mask
    seg = np.repeat(np.arange(len(r0)), count)
    first_of_seg = np.cumsum(count) - count
    y = y_first[seg] + (np.arange(total) - first_of_seg[seg])
    x = c0[seg] + (y - r0[seg]) * (c1[seg] - c0[seg]) / (r1[seg] - r0[seg])
    yi = y.astype(np.int64)
    order = np.lexsort((x, yi))
    yi, x = yi[order], x[order]
    per_row = np.bincount(yi, minlength=h)
    if (per_row % 2).any():
        raise ModelError("cross-section polygon is not closed", code=ErrorCode.RECONSTRUCTION_FAILED)
    x_in, x_out, row = x[0::2], x[1::2], yi[0::2]
    c_in = np.clip(np.ceil(x_in), 0, w).astype(np.int64)
    c_out = np.clip(np.ceil(x_out), 0, w).astype(np.int64)
    diff = np.zeros((h, w + 1), dtype=np.int32)
    np.add.at(diff, (row, c_in), 1)
    np.add.at(diff, (row, c_out), -1)
    mask[:] = np.cumsum(diff[:, :w], axis=1) > 0
    return mask


def slice_mask(mesh: Mesh, plane: ImagePlane) -> NDArray[np.uint8]:
    """Filled binary cross-section (H, W) uint8 {0, 1} of a closed ``mesh`` in ``plane``.

    Pixel (r, c) is 1 iff its centre, in-plane ``(c·sc, r·sr)`` mm mapped by the plane pose,
    lies inside the mesh cross-section (exact even-odd fill, see the module docstring).
    """
    start, end, _, _ = _plane_segments(mesh, plane.pose)
    sr, sc = plane.spacing_mm
    to_rc = np.array([1.0 / sr, 1.0 / sc])
    # In-plane (lateral, depth) → pixel (row, col) = (depth / sr, lateral / sc).
    return fill_segments(start[:, ::-1] * to_rc, end[:, ::-1] * to_rc, plane.shape)
