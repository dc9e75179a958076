"""Exact signed distance from points to a closed triangle mesh (negative inside).

Algorithm (vectorised numpy, no approximation anywhere):

1. Distance: branch and bound over a two-level hierarchy. The triangles are split into
   spatially compact clusters of at most ``S`` triangles (recursive median split of the
   centroids). Every cluster has a bounding sphere (centre ``C``, radius ``ρ``) and a slab
   (unit normal ``n``, half-thickness ``h``) that contain all its triangles, so for any
   point ``x`` and any point ``y`` of the cluster ``|x - y| >= max(|x - C| - ρ,
   |n·(x - C)| - h)``; each triangle likewise has a bound ``max(|x - c| - r, |plane dist|)``.
   For a block of points: (a) the bounds to every cluster are computed densely (the sphere
   test squared, without a square root); (b) in the cluster with the nearest centre the
   triangle with the smallest lower bound is measured exactly, giving an upper bound ``d``;
   (c) every cluster whose bound is below ``d`` is opened, each point's lowest-bound
   triangle among them is measured to tighten ``d``, then every triangle whose bound is still
   below ``d`` is measured exactly. Anything not measured provably cannot be closer, so the
   minimum is the exact Euclidean distance.
   The exact point–triangle distance is the plane distance when the projection falls inside
   the triangle, otherwise the minimum of the three clamped point–segment distances.
2. Sign: the closest point lies in the interior of a face, on an edge or on a vertex of the
   winning triangle (Ericson's Voronoi-region test, *Real-Time Collision Detection* §5.1.5);
   the sign of ``(x - closest) · n`` with ``n`` the angle-weighted pseudo-normal of that
   feature (face normal; sum of the two face normals for an edge; incident-angle-weighted
   sum of face normals for a vertex) is exact for closed, consistently wound meshes
   (Bærentzen & Aanæs, IEEE TVCG 11(3), 2005).

:class:`MeshDistance` holds the precomputed structure so many batches can be queried against
one mesh; :func:`signed_distance` and :func:`closest_points` are one-shot conveniences.
Measured speed is in docs/geometry.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from models.geometry.mesh import Mesh

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_FACE, _EDGE_AB, _EDGE_BC, _EDGE_CA, _VERT_A, _VERT_B, _VERT_C = range(7)
_POINT_BLOCK = 512  # points per block: keeps the (points, clusters) matrix cache-sized
_PAIR_BLOCK = 65536  # triangle bounds per vectorised call


@dataclass(frozen=True)
class ClosestPoints:
    """Result of a closest-point query for N points."""

    points: FloatArray  # (N, 3) closest surface points, mm
    distance: FloatArray  # (N,) unsigned Euclidean distance, mm
    face: IntArray  # (N,) index of a face containing the closest point
    feature: NDArray[np.int8]  # (N,) 0 face interior, 1-3 edge AB/BC/CA, 4-6 vertex A/B/C


def _unit(v: FloatArray) -> FloatArray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    out: FloatArray = np.divide(v, n, out=np.zeros_like(v), where=n > 0)
    return out


def closest_feature(
    d1: FloatArray, d2: FloatArray, aa: FloatArray, abac: FloatArray, cc: FloatArray
) -> tuple[FloatArray, FloatArray, NDArray[np.int8]]:
    """Ericson's closest point on triangle (a, b, c) to p, from d1 = ab·ap, d2 = ac·ap and the
    triangle constants |ab|², ab·ac, |ac|² (all (M,)). Returns (v, w, feature): the closest
    point is a + v·ab + w·ac and ``feature`` its Voronoi region (0 face, 1-3 edge AB/BC/CA,
    4-6 vertex A/B/C)."""
    d3, d4, d5, d6 = d1 - aa, d2 - abac, d1 - abac, d2 - cc  # ab·bp, ac·bp, ab·cp, ac·cp
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v, w = vb / denom, vc / denom
        feature = np.full(d1.shape, _FACE, dtype=np.int8)
        # Ericson tests A, B, AB, C, AC, BC in that order: assign in reverse so earlier wins.
        e1, e2 = d4 - d3, d5 - d6
        regions: list[tuple[NDArray[np.bool_], FloatArray | float, FloatArray | float, int]] = [
            ((va <= 0) & (e1 >= 0) & (e2 >= 0), 1.0 - e1 / (e1 + e2), e1 / (e1 + e2), _EDGE_BC),
            ((vb <= 0) & (d2 >= 0) & (d6 <= 0), 0.0, d2 / (d2 - d6), _EDGE_CA),
            ((d6 >= 0) & (d5 <= d6), 0.0, 1.0, _VERT_C),
            ((vc <= 0) & (d1 >= 0) & (d3 <= 0), d1 / (d1 - d3), 0.0, _EDGE_AB),
            ((d3 >= 0) & (d4 <= d3), 1.0, 0.0, _VERT_B),
            ((d1 <= 0) & (d2 <= 0), 0.0, 0.0, _VERT_A),
        ]
        for mask, rv, rw, code in regions:
            v = np.where(mask, rv, v)
            w = np.where(mask, rw, w)
            feature = np.where(mask, np.int8(code), feature)
    return v, w, feature.astype(np.int8)


def _median_split(centroids: FloatArray, leaf_size: int) -> list[IntArray]:
    """Spatially compact groups of at most ``leaf_size`` triangle ids (kd-style median split)."""
    stack = [np.arange(len(centroids), dtype=np.int64)]
    leaves: list[IntArray] = []
    while stack:
        ids = stack.pop()
        if len(ids) <= leaf_size:
            leaves.append(ids)
            continue
        pts = centroids[ids]
        axis = int(np.argmax(np.ptp(pts, axis=0)))
        half = len(ids) // 2
        part = np.argpartition(pts[:, axis], half)
        stack.extend([ids[part[:half]], ids[part[half:]]])
    return leaves


class MeshDistance:
    """Precomputed exact distance / sign structure of one closed mesh (see module docstring)."""

    def __init__(self, mesh: Mesh) -> None:
        if len(mesh.faces) == 0:
            raise ValueError("MeshDistance needs a mesh with at least one face")
        self.mesh = mesh
        tri = mesh.triangles  # (F, 3, 3)
        a, ab, ac = tri[:, 0], tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        bc = tri[:, 2] - tri[:, 1]
        aa, abac, cc = (np.einsum("ij,ij->i", p, q) for p, q in ((ab, ab), (ab, ac), (ac, ac)))
        normal = _unit(np.cross(ab, ac))
        centroid = tri.mean(axis=1)
        radius = np.linalg.norm(tri - centroid[:, None, :], axis=2).max(axis=1)
        # Column tables gathered with np.take(..., axis=1): contiguous 1-D columns are fast.
        self._exact_table = np.ascontiguousarray(np.concatenate([
            a.T, ab.T, ac.T, normal.T,
            np.stack([aa, abac, cc, np.einsum("ij,ij->i", bc, bc), aa * cc - abac**2]),
        ]))  # (17, F)
        self._bound_table = np.ascontiguousarray(np.concatenate([
            centroid.T, radius[None], normal.T, np.einsum("ij,ij->i", normal, a)[None],
        ]))  # (8, F): centroid, bounding radius, unit normal, plane offset
        self._a, self._ab, self._ac = a, ab, ac
        self._aa, self._abac, self._cc = aa, abac, cc
        self._build_clusters(tri, centroid, normal * np.linalg.norm(np.cross(ab, ac), axis=1)[:, None])
        self._build_pseudo_normals(mesh, tri, normal)

    def _build_clusters(self, tri: FloatArray, centroid: FloatArray, area_normal: FloatArray) -> None:
        n_faces = len(tri)
        leaves = _median_split(centroid, int(min(64, max(8, round(math.sqrt(n_faces) / 3)))))
        size = max(len(ids) for ids in leaves)
        members = np.empty((len(leaves), size), dtype=np.int64)
        for i, ids in enumerate(leaves):
            members[i, : len(ids)] = ids
            members[i, len(ids) :] = ids[0]  # padding repeats a member: harmless duplicates
        corners = tri[members].reshape(len(leaves), -1, 3)  # (C, 3S, 3)
        centre = 0.5 * (corners.min(axis=1) + corners.max(axis=1))
        rel = corners - centre[:, None, :]
        rho = np.linalg.norm(rel, axis=2).max(axis=1)
        n = _unit(area_normal[members].sum(axis=1))
        h = np.abs(np.einsum("csk,ck->cs", rel, n)).max(axis=1)
        self._members = members  # (C, S)
        # Triangle bounds laid out cluster-major (8, C, S): opening a cluster is a contiguous copy.
        self._cluster_bounds = np.ascontiguousarray(self._bound_table[:, members])
        self._cluster_centre, self._cluster_rho = centre, rho
        self._cluster_n, self._cluster_h = n, h
        self._cluster_n_dot_c = np.einsum("ij,ij->i", n, centre)
        self._cluster_c2 = np.einsum("ij,ij->i", centre, centre)
        self._cluster_centre_t = np.ascontiguousarray(centre.T)
        self._cluster_n_t = np.ascontiguousarray(n.T)
        # Bounds are computed in floating point: shave a tiny slack so rounding never prunes.
        self._slack = 1e-9 * (1.0 + float(np.ptp(corners.reshape(-1, 3), axis=0).max()))

    def _build_pseudo_normals(self, mesh: Mesh, tri: FloatArray, face_n: FloatArray) -> None:
        f = mesh.faces
        n_v, n_f = len(mesh.vertices), len(f)
        # Vertex pseudo-normals: sum over incident faces of (corner angle) · face normal.
        vert_n = np.zeros((n_v, 3))
        for k in range(3):
            e1 = _unit(tri[:, (k + 1) % 3] - tri[:, k])
            e2 = _unit(tri[:, (k + 2) % 3] - tri[:, k])
            angle = np.arccos(np.clip(np.einsum("ij,ij->i", e1, e2), -1.0, 1.0))
            for axis in range(3):
                vert_n[:, axis] += np.bincount(f[:, k], angle * face_n[:, axis], minlength=n_v)
        # Edge pseudo-normals: sum of the two adjacent face normals (each weighted by π).
        half = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
        key = np.minimum(half[:, 0], half[:, 1]) * n_v + np.maximum(half[:, 0], half[:, 1])
        _, edge_id = np.unique(key, return_inverse=True)
        stacked = np.tile(face_n, (3, 1))
        edge_n = np.stack(
            [np.bincount(edge_id, stacked[:, axis], minlength=int(edge_id.max()) + 1) for axis in range(3)], 1
        )
        # Per face, the pseudo-normal of each feature code 0..6: (F, 7, 3).
        self._feature_normals = np.stack([
            face_n,
            edge_n[edge_id[:n_f]], edge_n[edge_id[n_f : 2 * n_f]], edge_n[edge_id[2 * n_f :]],
            vert_n[f[:, 0]], vert_n[f[:, 1]], vert_n[f[:, 2]],
        ], axis=1)

    def _pair_sq_distance(self, x: FloatArray, tri: IntArray) -> FloatArray:
        """Exact squared distances between points ``x`` (..., 3) and triangles ``tri`` (...)."""
        t = np.take(self._exact_table, tri, axis=1)
        ax, ay, az, abx, aby, abz, acx, acy, acz, nx, ny, nz, aa, abac, cc, bb, det = t
        px, py, pz = x[..., 0] - ax, x[..., 1] - ay, x[..., 2] - az
        d1 = abx * px + aby * py + abz * pz
        d2 = acx * px + acy * py + acz * pz
        pp = px * px + py * py + pz * pz
        dn = nx * px + ny * py + nz * pz
        with np.errstate(divide="ignore", invalid="ignore"):
            v = (cc * d1 - abac * d2) / det
            w = (aa * d2 - abac * d1) / det
            inside = (v >= 0.0) & (w >= 0.0) & (v + w <= 1.0)
            t1 = np.clip(d1 / aa, 0.0, 1.0)
            t2 = np.clip(d2 / cc, 0.0, 1.0)
            e = d2 - d1 - abac + aa  # (p - b)·(c - b)
            t3 = np.clip(e / bb, 0.0, 1.0)
            s_ab = pp - t1 * (2.0 * d1 - t1 * aa)
            s_ac = pp - t2 * (2.0 * d2 - t2 * cc)
            s_bc = (pp - 2.0 * d1 + aa) - t3 * (2.0 * e - t3 * bb)
        edge = np.fmin(np.fmin(s_ab, s_ac), s_bc)  # fmin skips NaN from degenerate edges
        out: FloatArray = np.maximum(np.where(inside, dn * dn, edge), 0.0)
        return np.where(np.isnan(out), np.inf, out)

    def _triangle_lower_bound(self, x: FloatArray, cluster: IntArray) -> FloatArray:
        """max(|x - c| - r, |plane distance|) (P, S) for points (P, 1, 3) and the triangles of
        clusters (P,)."""
        cx, cy, cz, r, nx, ny, nz, off = np.take(self._cluster_bounds, cluster, axis=1)
        dx, dy, dz = x[..., 0] - cx, x[..., 1] - cy, x[..., 2] - cz
        sphere = np.sqrt(dx * dx + dy * dy + dz * dz) - r
        plane = np.abs(nx * x[..., 0] + ny * x[..., 1] + nz * x[..., 2] - off)
        out: FloatArray = np.maximum(sphere, plane)
        return out

    def _cluster_terms(self, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """For points (n, 3): squared distance (n, C) to every cluster centre and the slab bound
        ``|n·(x - C)| - h`` (n, C). The sphere bound ``|x - C| - ρ < d`` is tested squared."""
        x2 = np.einsum("ij,ij->i", x, x)
        d2 = x2[:, None] - 2.0 * (x @ self._cluster_centre_t) + self._cluster_c2[None, :]
        slab = np.abs(x @ self._cluster_n_t - self._cluster_n_dot_c) - self._cluster_h
        return d2, slab

    def _improve(self, x: FloatArray, owner: IntArray, cand: IntArray, best: FloatArray,
                 best_face: IntArray) -> None:
        """Measure pairs (point ``owner``, triangle ``cand``) exactly; lower ``best`` in place."""
        if len(cand) == 0:
            return
        dist = np.sqrt(self._pair_sq_distance(x[owner], cand))
        order = np.lexsort((dist, owner))
        lead = np.ones(len(order), dtype=bool)
        lead[1:] = owner[order[1:]] != owner[order[:-1]]
        win = order[lead]
        better = dist[win] < best[owner[win]]
        best[owner[win][better]] = dist[win][better]
        best_face[owner[win][better]] = cand[win][better]

    def _nearest_block(self, x: FloatArray) -> tuple[IntArray, FloatArray]:
        """Exact nearest face (n,) and distance (n,) for a block of points (n, 3)."""
        d2, slab = self._cluster_terms(x)  # (n, C) each
        # Upper bound: the most promising triangle of the cluster with the nearest centre.
        first = np.argmin(d2, axis=1)
        t_lb = self._triangle_lower_bound(x[:, None, :], first)  # (n, S)
        best_face = self._members[first, np.argmin(t_lb, axis=1)]
        best = np.sqrt(self._pair_sq_distance(x, best_face))
        # Open every cluster that could hold something closer.
        reach = best[:, None] + self._slack
        open_ = (d2 < (reach + self._cluster_rho) ** 2) & (slab < reach)
        owner, cluster = np.nonzero(open_)  # owner is sorted
        rows = max(1, _PAIR_BLOCK // self._members.shape[1])
        for s in range(0, len(owner), rows):
            own, cl = owner[s : s + rows], cluster[s : s + rows]
            t_lb = self._triangle_lower_bound(x[own][:, None, :], cl) - self._slack  # (P, S)
            # Tighten first with each point's lowest-bound triangle, then measure the survivors.
            row_min, row_arg = t_lb.min(axis=1), t_lb.argmin(axis=1)
            order = np.lexsort((row_min, own))
            lead = np.ones(len(order), dtype=bool)
            lead[1:] = own[order[1:]] != own[order[:-1]]
            top = order[lead]
            self._improve(x, own[top], self._members[cl[top], row_arg[top]], best, best_face)
            pi, ti = np.nonzero(t_lb < best[own][:, None])
            self._improve(x, own[pi], self._members[cl[pi], ti], best, best_face)
        return best_face, best

    def closest_points(self, points: FloatArray) -> ClosestPoints:
        """Exact closest surface points for query points (N, 3) mm."""
        x = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        n = len(x)
        face = np.zeros(n, dtype=np.int64)
        dist = np.zeros(n)
        for s in range(0, n, _POINT_BLOCK):
            face[s : s + _POINT_BLOCK], dist[s : s + _POINT_BLOCK] = self._nearest_block(x[s : s + _POINT_BLOCK])
        ap = x - self._a[face]
        ab, ac = self._ab[face], self._ac[face]
        v, w, feature = closest_feature(
            np.einsum("ij,ij->i", ab, ap), np.einsum("ij,ij->i", ac, ap),
            self._aa[face], self._abac[face], self._cc[face],
        )
        closest = self._a[face] + v[:, None] * ab + w[:, None] * ac
        return ClosestPoints(points=closest, distance=dist, face=face, feature=feature)

    def signed_distance(self, points: FloatArray) -> FloatArray:
        """Exact signed distance (N,) mm of points (N, 3): negative inside, positive outside."""
        cp = self.closest_points(points)
        x = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        normal = self._feature_normals[cp.face, cp.feature.astype(np.int64)]
        side = np.einsum("ij,ij->i", x - cp.points, normal)
        out: FloatArray = np.where(side < 0, -cp.distance, cp.distance)
        return out


def signed_distance(mesh: Mesh, points: FloatArray) -> FloatArray:
    """Exact signed distance (N,) mm from points (N, 3) mm to a closed, outward-wound
    ``mesh``; negative inside. Build a :class:`MeshDistance` once to query many batches."""
    return MeshDistance(mesh).signed_distance(points)


def closest_points(mesh: Mesh, points: FloatArray) -> ClosestPoints:
    """Exact closest points on ``mesh`` for points (N, 3) mm (see :class:`ClosestPoints`)."""
    return MeshDistance(mesh).closest_points(points)
