"""Accuracy metrics of a reconstructed LV against ground truth (numpy/scipy only).

Definitions (also in docs/report-schema.md, section "Metrics"), all in mm:

* surface samples: ``n_samples`` points drawn uniformly (area-weighted) on each surface;
* d(p, S): exact Euclidean distance from a point to the triangle set S (not to its vertices);
* with D_pg = {d(p, gt) : p sampled on pred} and D_gp = {d(q, pred) : q sampled on gt}:
  MAE = mean(D_pg ∪ D_gp), RMSE = sqrt(mean of squares over D_pg ∪ D_gp),
  Hausdorff = max(max D_pg, max D_gp), Chamfer = mean(D_pg) + mean(D_gp);
* volumetric Dice/IoU: both meshes voxelised on one grid (centre-in-mesh by ray parity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from models.geometry.mesh import Mesh

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
_Best = tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.intp]]
"""Running (distance (M,), closest point (M, 3), triangle (M,)) of an exact distance query."""

KNN_STAGES: Final[tuple[int, ...]] = (8, 64)
"""Nearest-centroid candidate counts tried in turn before the exhaustive ball search."""
PAIR_CHUNK: Final[int] = 400_000
"""Point–triangle pairs evaluated at once in the exact distance search (bounds memory)."""
ICP_PATIENCE: Final[int] = 3
_PERTURB: Final[tuple[float, float]] = (1.0, math.sqrt(2.0) - 1.0)
"""Direction of the symbolic perturbation that breaks ray/edge ties in the voxeliser."""


@dataclass(frozen=True)
class SurfaceMetrics:
    """Symmetric surface distances between two meshes, mm."""

    mae: float
    rmse: float
    hausdorff: float
    chamfer: float

    def as_dict(self) -> dict[str, float]:
        return {"mae_mm": self.mae, "rmse_mm": self.rmse, "hausdorff_mm": self.hausdorff, "chamfer_mm": self.chamfer}


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)


def sample_surface(mesh: Mesh, n: int, rng: np.random.Generator | int | None = None) -> FloatArray:
    """``n`` points (n, 3) uniformly distributed over the surface area of ``mesh``."""
    gen = _as_rng(rng)
    tri = mesh.triangles
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    if not len(tri) or area.sum() <= 0:
        raise ValueError("cannot sample a mesh without surface area")
    face = gen.choice(len(tri), size=n, p=area / area.sum())
    u, v = gen.random(n), gen.random(n)
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    t = tri[face]
    out: FloatArray = t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])
    return out


def closest_points_on_triangles(p: FloatArray, a: FloatArray, b: FloatArray, c: FloatArray) -> FloatArray:
    """Closest point (M, 3) on triangle (a, b, c)[i] to p[i] (Ericson, Real-Time Collision Detection 5.1.5)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = np.einsum("ij,ij->i", ab, ap), np.einsum("ij,ij->i", ac, ap)
    bp = p - b
    d3, d4 = np.einsum("ij,ij->i", ab, bp), np.einsum("ij,ij->i", ac, bp)
    cp = p - c
    d5, d6 = np.einsum("ij,ij->i", ab, cp), np.einsum("ij,ij->i", ac, cp)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2

    def ratio(num: FloatArray, den: FloatArray) -> FloatArray:
        return np.divide(num, den, out=np.zeros_like(num), where=den != 0)

    denom = va + vb + vc
    v_in, w_in = ratio(vb, denom), ratio(vc, denom)
    out = a + v_in[:, None] * ab + w_in[:, None] * ac  # face interior
    # Later assignments take precedence, in the reverse order of Ericson's early returns.
    e_bc = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    w = ratio(d4 - d3, (d4 - d3) + (d5 - d6))
    out[e_bc] = (b + w[:, None] * (c - b))[e_bc]
    e_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    w = ratio(d2, d2 - d6)
    out[e_ac] = (a + w[:, None] * ac)[e_ac]
    v_c = (d6 >= 0) & (d5 <= d6)
    out[v_c] = c[v_c]
    e_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    v = ratio(d1, d1 - d3)
    out[e_ab] = (a + v[:, None] * ab)[e_ab]
    v_b = (d3 >= 0) & (d4 <= d3)
    out[v_b] = b[v_b]
    v_a = (d1 <= 0) & (d2 <= 0)
    out[v_a] = a[v_a]
    return out


class TriangleIndex:
    """Exact closest-point queries against a triangle mesh, accelerated by a KD-tree of
    triangle centroids: a candidate answer d is certified once no unchecked triangle can be
    closer (centroid distance − max centroid-to-corner radius ≥ d); otherwise every triangle
    in the ball of radius d + radius is checked."""

    def __init__(self, mesh: Mesh) -> None:
        if not len(mesh.faces):
            raise ValueError("mesh has no faces")
        self.tri = mesh.triangles
        self.centroids = self.tri.mean(axis=1)
        self.tri_radius = np.linalg.norm(self.tri - self.centroids[:, None], axis=2).max(axis=1)
        self.radius = float(self.tri_radius.max())
        self.tree = cKDTree(self.centroids)

    def _pair_closest(self, pts: FloatArray, tri_idx: NDArray[np.intp]) -> tuple[FloatArray, FloatArray]:
        t = self.tri[tri_idx]
        q = closest_points_on_triangles(pts, t[:, 0], t[:, 1], t[:, 2])
        return q, np.linalg.norm(q - pts, axis=1)

    def query(self, points: FloatArray) -> tuple[FloatArray, FloatArray, NDArray[np.intp]]:
        """Distances (M,), closest surface points (M, 3) and the triangle (M,) each lies on, for
        query points (M, 3)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        dist = np.full(len(pts), np.inf)
        closest = np.zeros((len(pts), 3))
        face = np.zeros(len(pts), dtype=np.intp)
        todo = np.arange(len(pts))
        done_k = 0
        for k in KNN_STAGES:
            k = min(k, len(self.tri))
            c_dist_raw, c_idx_raw = self.tree.query(pts[todo], k=k)
            c_dist = np.asarray(c_dist_raw, dtype=np.float64).reshape(len(todo), k)
            c_idx = np.asarray(c_idx_raw, dtype=np.intp).reshape(len(todo), k)
            self._update(pts, todo, c_dist[:, done_k:], c_idx[:, done_k:], (dist, closest, face))
            if k == len(self.tri):
                return dist, closest, face
            todo = todo[dist[todo] > c_dist[:, -1] - self.radius]
            done_k = k
            if not len(todo):
                return dist, closest, face
        self._refine(pts, todo, (dist, closest, face))
        return dist, closest, face

    def _update(
        self,
        pts: FloatArray,
        which: NDArray[np.intp],
        c_dist: FloatArray,
        c_idx: NDArray[np.intp],
        best: _Best,
    ) -> None:
        """Check the candidate triangles (len(which), k) of points ``which``; updates ``best``."""
        owner = np.repeat(which, c_idx.shape[1])
        tri_idx = c_idx.ravel()
        lower = c_dist.ravel() - self.tri_radius[tri_idx]
        self._check_pairs(pts, owner, tri_idx, lower, best)

    def _check_pairs(
        self,
        pts: FloatArray,
        owner: NDArray[np.intp],
        tri_idx: NDArray[np.intp],
        lower: FloatArray,
        best: _Best,
    ) -> None:
        """Exact distances for the pairs (owner point, triangle) whose lower bound can beat the
        current best; keeps the best per point."""
        dist, closest, face = best
        near = lower < dist[owner]
        owner, tri_idx = owner[near], tri_idx[near]
        for s in range(0, len(owner), PAIR_CHUNK):
            o, ti = owner[s : s + PAIR_CHUNK], tri_idx[s : s + PAIR_CHUNK]
            q, d = self._pair_closest(pts[o], ti)
            order = np.lexsort((d, o))
            first = np.ones(len(order), dtype=bool)
            first[1:] = o[order][1:] != o[order][:-1]
            win = order[first]
            better = d[win] < dist[o[win]]
            dist[o[win][better]] = d[win][better]
            closest[o[win][better]] = q[win][better]
            face[o[win][better]] = ti[win][better]

    def _refine(self, pts: FloatArray, which: NDArray[np.intp], best: _Best) -> None:
        """Last resort for points still uncertified: every triangle in the ball of radius
        d + max radius, in chunks of bounded size."""
        dist = best[0]
        sizes = np.asarray(
            self.tree.query_ball_point(pts[which], dist[which] + self.radius, return_length=True), dtype=np.intp
        )
        chunk_id = np.cumsum(sizes) // PAIR_CHUNK
        for cid in np.unique(chunk_id):
            sel = which[chunk_id == cid]
            balls = self.tree.query_ball_point(pts[sel], dist[sel] + self.radius)
            counts = np.array([len(b) for b in balls], dtype=np.intp)
            owner = np.repeat(sel, counts)
            tri_idx = np.concatenate([np.asarray(b, dtype=np.intp) for b in balls])
            lower = np.linalg.norm(pts[owner] - self.centroids[tri_idx], axis=1) - self.tri_radius[tri_idx]
            self._check_pairs(pts, owner, tri_idx, lower, best)


def point_to_mesh_distance(points: FloatArray, mesh: Mesh) -> FloatArray:
    """Exact unsigned distances (M,) mm from points (M, 3) to the surface of ``mesh``."""
    return TriangleIndex(mesh).query(points)[0]


def surface_distances(
    pred: Mesh, gt: Mesh, n_samples: int = 20000, rng: np.random.Generator | int | None = None
) -> SurfaceMetrics:
    """Symmetric MAE, RMSE, Hausdorff and Chamfer (mm) between two surfaces (definitions above)."""
    gen = _as_rng(rng)
    d_pg = point_to_mesh_distance(sample_surface(pred, n_samples, gen), gt)
    d_gp = point_to_mesh_distance(sample_surface(gt, n_samples, gen), pred)
    both = np.concatenate([d_pg, d_gp])
    return SurfaceMetrics(
        mae=float(both.mean()),
        rmse=float(np.sqrt(np.mean(both**2))),
        hausdorff=float(max(d_pg.max(), d_gp.max())),
        chamfer=float(d_pg.mean() + d_gp.mean()),
    )


def _edge_sign(p_from: FloatArray, p_to: FloatArray, swap: BoolArray, s: FloatArray) -> NDArray[np.int8]:
    """Sign (+1/-1, never 0) of the 2D edge function cross(to − from, s − from), computed in a
    canonical vertex order so the two triangles sharing an edge see bit-identical values; exact
    zeros are resolved by the symbolic perturbation s + ε·d1 + ε²·(0, 1) (simulation of simplicity)."""
    lo = np.where(swap[:, None], p_to, p_from)
    hi = np.where(swap[:, None], p_from, p_to)
    ux, uy = hi[:, 0] - lo[:, 0], hi[:, 1] - lo[:, 1]
    e = ux * (s[:, 1] - lo[:, 1]) - uy * (s[:, 0] - lo[:, 0])
    tie = ux * _PERTURB[1] - uy * _PERTURB[0]
    value = np.where(e != 0, e, np.where(tie != 0, tie, ux))
    sign = np.where(value > 0, 1, -1).astype(np.int8)
    out: NDArray[np.int8] = np.where(swap, -sign, sign).astype(np.int8)
    return out


def voxelize(mesh: Mesh, origin: FloatArray, spacing: float, shape: tuple[int, int, int]) -> BoolArray:
    """Occupancy (nx, ny, nz) of voxel centres ``origin + (i + 0.5) · spacing`` inside a closed mesh.

    Ray parity along +z per (x, y) column with watertight edge tie-breaking, so a closed mesh
    is voxelised exactly (up to rays grazing exactly vertical faces)."""
    nx, ny, nz = shape
    xs = origin[0] + (np.arange(nx) + 0.5) * spacing
    ys = origin[1] + (np.arange(ny) + 0.5) * spacing
    zs = origin[2] + (np.arange(nz) + 0.5) * spacing
    tri, f = mesh.triangles, mesh.faces
    p2 = tri[:, :, :2]
    area2 = (p2[:, 1, 0] - p2[:, 0, 0]) * (p2[:, 2, 1] - p2[:, 0, 1]) - (p2[:, 1, 1] - p2[:, 0, 1]) * (
        p2[:, 2, 0] - p2[:, 0, 0]
    )
    keep = area2 != 0
    tri, f, p2, area2 = tri[keep], f[keep], p2[keep], area2[keep]
    i0 = np.clip(np.ceil((p2[:, :, 0].min(1) - origin[0]) / spacing - 0.5), 0, nx).astype(np.intp)
    i1 = np.clip(np.floor((p2[:, :, 0].max(1) - origin[0]) / spacing - 0.5), -1, nx - 1).astype(np.intp)
    j0 = np.clip(np.ceil((p2[:, :, 1].min(1) - origin[1]) / spacing - 0.5), 0, ny).astype(np.intp)
    j1 = np.clip(np.floor((p2[:, :, 1].max(1) - origin[1]) / spacing - 0.5), -1, ny - 1).astype(np.intp)
    ni, nj = np.maximum(i1 - i0 + 1, 0), np.maximum(j1 - j0 + 1, 0)
    counts = ni * nj
    owner = np.repeat(np.arange(len(tri)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    ci = i0[owner] + local // np.maximum(nj[owner], 1)
    cj = j0[owner] + local % np.maximum(nj[owner], 1)
    s = np.stack([xs[ci], ys[cj]], axis=1)
    pt, ft = p2[owner], f[owner]
    # Inside iff the three edge functions share one sign (either orientation of the projection).
    signs = [_edge_sign(pt[:, a], pt[:, b], ft[:, a] > ft[:, b], s) for a, b in ((0, 1), (1, 2), (2, 0))]
    inside = (signs[0] == signs[1]) & (signs[1] == signs[2])
    owner, ci, cj, s = owner[inside], ci[inside], cj[inside], s[inside]
    t = tri[owner]
    # z of the crossing by barycentric interpolation on the projected triangle.
    d = t[:, :, :2]
    det = (d[:, 1, 0] - d[:, 0, 0]) * (d[:, 2, 1] - d[:, 0, 1]) - (d[:, 1, 1] - d[:, 0, 1]) * (d[:, 2, 0] - d[:, 0, 0])
    l1 = ((s[:, 0] - d[:, 0, 0]) * (d[:, 2, 1] - d[:, 0, 1]) - (s[:, 1] - d[:, 0, 1]) * (d[:, 2, 0] - d[:, 0, 0])) / det
    l2 = ((d[:, 1, 0] - d[:, 0, 0]) * (s[:, 1] - d[:, 0, 1]) - (d[:, 1, 1] - d[:, 0, 1]) * (s[:, 0] - d[:, 0, 0])) / det
    z = t[:, 0, 2] + l1 * (t[:, 1, 2] - t[:, 0, 2]) + l2 * (t[:, 2, 2] - t[:, 0, 2])
    z = np.clip(z, t[:, :, 2].min(axis=1), t[:, :, 2].max(axis=1))  # guards projected slivers
    crossings = np.zeros((nx * ny, nz + 1), dtype=np.int32)
    np.add.at(crossings, (ci * ny + cj, np.searchsorted(zs, z, side="left")), 1)
    occupancy: BoolArray = (np.cumsum(crossings[:, :nz], axis=1) % 2 == 1).reshape(nx, ny, nz)
    return occupancy


def volumetric_overlap(pred: Mesh, gt: Mesh, voxel_mm: float = 1.0) -> tuple[float, float]:
    """Volumetric (Dice, IoU) of two closed meshes voxelised on one common grid of ``voxel_mm``."""
    if not voxel_mm > 0:
        raise ValueError("voxel_mm must be positive")
    lo = np.minimum(pred.vertices.min(0), gt.vertices.min(0)) - voxel_mm
    hi = np.maximum(pred.vertices.max(0), gt.vertices.max(0)) + voxel_mm
    shape = tuple(int(n) for n in np.ceil((hi - lo) / voxel_mm))
    grid_shape = (shape[0], shape[1], shape[2])
    a = voxelize(pred, lo, voxel_mm, grid_shape)
    b = voxelize(gt, lo, voxel_mm, grid_shape)
    return mask_dice(a, b), mask_iou(a, b)


def mask_dice(a: NDArray[np.generic], b: NDArray[np.generic]) -> float:
    """Dice 2|A∩B| / (|A| + |B|) of two binary masks of equal shape (1.0 when both are empty)."""
    x, y = _bool_pair(a, b)
    total = int(x.sum()) + int(y.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(x, y).sum()) / total


def mask_iou(a: NDArray[np.generic], b: NDArray[np.generic]) -> float:
    """IoU |A∩B| / |A∪B| of two binary masks of equal shape (1.0 when both are empty)."""
    x, y = _bool_pair(a, b)
    union = int(np.logical_or(x, y).sum())
    return 1.0 if union == 0 else int(np.logical_and(x, y).sum()) / union


def _bool_pair(a: NDArray[np.generic], b: NDArray[np.generic]) -> tuple[BoolArray, BoolArray]:
    x, y = np.asarray(a) != 0, np.asarray(b) != 0
    if x.shape != y.shape:
        raise ValueError(f"masks differ in shape: {x.shape} vs {y.shape}")
    return x, y


def kabsch(source: FloatArray, target: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Least-squares rotation R (3, 3) and translation t (3,) with R·source + t ≈ target (no scaling)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    h = (source - mu_s).T @ (target - mu_t)
    u, _, vt = np.linalg.svd(h)
    fix = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(vt.T @ u.T))) or 1.0])
    r = vt.T @ fix @ u.T
    return r, mu_t - r @ mu_s


def rigid_align(
    source_pts: FloatArray,
    target: Mesh | FloatArray,
    max_iter: int = 50,
    tol: float = 1e-4,
) -> tuple[FloatArray, FloatArray]:
    """Rigid ICP (rotation + translation, no scaling) of points (M, 3) onto a target mesh or
    point cloud (K, 3), initialised by matching centroids (area-weighted surface centroid for a
    mesh). Point-to-plane ICP: each point is paired with its closest target point (exact closest
    surface point for a mesh, nearest point for a cloud) and the plane there (face normal; PCA
    normal of the 12 nearest cloud points), which converges in a few iterations even along
    smooth, nearly symmetric walls. Stops when an update moves no point by more than ``tol`` mm
    or the RMS closest-point distance has not improved (by more than 1e-6 relative) for
    ICP_PATIENCE iterations, as happens when shapes differ and the optimum is flat along a
    near-symmetry; returns the best pose seen, (R, t) with aligned = pts @ R.T + t.
    """
    src = np.asarray(source_pts, dtype=np.float64).reshape(-1, 3)
    if isinstance(target, Mesh):
        index = TriangleIndex(target)
        tri = target.triangles
        normal_x2 = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        area2 = np.linalg.norm(normal_x2, axis=1)
        face_normals = normal_x2 / np.where(area2 > 0, area2, 1.0)[:, None]
        centroid = (tri.mean(axis=1) * area2[:, None]).sum(0) / area2.sum()

        def pair(x: FloatArray) -> tuple[FloatArray, FloatArray]:
            _, closest, face = index.query(x)
            return closest, face_normals[face]
    else:
        cloud = np.asarray(target, dtype=np.float64).reshape(-1, 3)
        tree = cKDTree(cloud)
        cloud_normals = _pca_normals(cloud, tree)
        centroid = cloud.mean(0)

        def pair(x: FloatArray) -> tuple[FloatArray, FloatArray]:
            idx = np.asarray(tree.query(x)[1], dtype=np.intp)
            return cloud[idx], cloud_normals[idx]

    r, t = np.eye(3), centroid - src.mean(0)
    best_rms, best, stale = math.inf, (r, t), 0
    for _ in range(max_iter):
        moved = src @ r.T + t
        closest, n = pair(moved)
        rms = float(np.sqrt(np.mean(np.sum((moved - closest) ** 2, axis=1))))
        if rms < best_rms * (1.0 - 1e-6):
            best_rms, best, stale = rms, (r, t), 0
        else:
            stale += 1
            if stale >= ICP_PATIENCE:
                break
        a = np.concatenate([np.cross(moved, n), n], axis=1)  # d/d(omega, dt) of (x - q)·n
        b = -np.einsum("ij,ij->i", moved - closest, n)
        x = np.linalg.lstsq(a, b, rcond=None)[0]
        dr = _rotation_vector_to_matrix(x[:3])
        r, t = dr @ r, dr @ t + x[3:]
        if float(np.abs(moved @ (dr - np.eye(3)).T + x[3:]).max()) < tol:
            return r, t
    return best


def _pca_normals(cloud: FloatArray, tree: cKDTree, k: int = 12) -> FloatArray:
    """Unit normals (K, 3) of a point cloud: least-variance direction of each point's k neighbours."""
    k = min(k, len(cloud))
    idx = np.asarray(tree.query(cloud, k=k)[1], dtype=np.intp).reshape(len(cloud), k)
    nb = cloud[idx] - cloud[idx].mean(axis=1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", nb, nb)
    _, vecs = np.linalg.eigh(cov)
    out: FloatArray = vecs[:, :, 0]
    return out


def _rotation_vector_to_matrix(omega: FloatArray) -> FloatArray:
    angle = float(np.linalg.norm(omega))
    if angle == 0.0:
        return np.eye(3)
    k = omega / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    out: FloatArray = np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * (kx @ kx)
    return out


def apply_rigid(mesh: Mesh, rotation: FloatArray, translation: FloatArray) -> Mesh:
    """``mesh`` moved by x → R·x + t (same faces)."""
    return mesh.with_vertices(mesh.vertices @ np.asarray(rotation).T + np.asarray(translation))
