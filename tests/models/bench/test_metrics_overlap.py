"""Volumetric Dice/IoU (exact voxeliser) and 2D mask overlap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh

from models.bench.metrics import mask_dice, mask_iou, volumetric_overlap, voxelize
from models.geometry.mesh import Mesh


def sphere(radius: float, centre: tuple[float, float, float] = (0.0, 0.0, 0.0), subdivisions: int = 4) -> Mesh:
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Mesh(np.asarray(s.vertices) + np.asarray(centre), np.asarray(s.faces, dtype=np.int64))


@pytest.mark.parametrize("d", [6.0, 10.0, 25.0])
def test_two_spheres_match_the_lens_volume(d: float) -> None:
    r = 20.0
    lens = math.pi * (4 * r + d) * (2 * r - d) ** 2 / 12.0
    ball = 4.0 / 3.0 * math.pi * r**3
    dice, iou = volumetric_overlap(sphere(r), sphere(r, (0.6 * d, 0.8 * d, 0.0)), voxel_mm=1.0)
    assert dice == pytest.approx(lens / ball, rel=0.01)
    assert iou == pytest.approx(lens / (2 * ball - lens), rel=0.01)


def test_identical_meshes_overlap_fully() -> None:
    assert volumetric_overlap(sphere(12.0, subdivisions=3), sphere(12.0, subdivisions=3)) == (1.0, 1.0)


def test_disjoint_meshes_do_not_overlap() -> None:
    assert volumetric_overlap(sphere(5.0), sphere(5.0, (0.0, 0.0, 20.0))) == (0.0, 0.0)


def test_voxelizer_is_exact_when_rays_hit_edges_and_vertices() -> None:
    """A 20 mm cube whose edges, face diagonals and corners lie exactly on voxel-centre columns:
    every column must still be all-inside or all-outside with the right height."""
    box = trimesh.creation.box(extents=(20.0, 20.0, 20.0))
    mesh = Mesh(np.asarray(box.vertices), np.asarray(box.faces, dtype=np.int64))
    origin = np.array([-13.5, -13.5, -13.25])  # voxel centres at integer x, y (… -10 … 10 …)
    occ = voxelize(mesh, origin, 1.0, (27, 27, 27))
    zs = origin[2] + (np.arange(27) + 0.5)
    column_in_z = (zs > -10) & (zs < 10)
    xs = origin[0] + (np.arange(27) + 0.5)
    strictly_inside = np.abs(xs) < 10
    for i in range(27):
        for j in range(27):
            col = occ[i, j]
            if strictly_inside[i] and strictly_inside[j]:
                np.testing.assert_array_equal(col, column_in_z)
            elif np.abs(xs[i]) > 10 or np.abs(xs[j]) > 10:
                assert not col.any()
            else:  # on the boundary: either consistently in or out, never a half-filled column
                assert not col.any() or np.array_equal(col, column_in_z)


def test_voxelizer_handles_nested_and_multiple_components() -> None:
    """A hollow shell (outer sphere + inward-wound inner sphere) and a separate ball in one mesh."""
    outer, inner, extra = sphere(15.0), sphere(8.0), sphere(4.0, (30.0, 0.0, 0.0))
    v = np.concatenate([outer.vertices, inner.vertices, extra.vertices])
    n1, n2 = len(outer.vertices), len(outer.vertices) + len(inner.vertices)
    f = np.concatenate([outer.faces, inner.faces[:, ::-1] + n1, extra.faces + n2])
    origin = np.array([-17.0, -17.0, -17.0])
    occ = voxelize(Mesh(v, f), origin, 0.5, (110, 70, 70))
    c = origin + 0.25 + 0.5 * np.stack(np.meshgrid(*(np.arange(n) for n in occ.shape), indexing="ij"), -1)
    r0 = np.linalg.norm(c, axis=-1)
    r1 = np.linalg.norm(c - [30.0, 0.0, 0.0], axis=-1)
    truth = ((r0 < 15.0) & (r0 > 8.0)) | (r1 < 4.0)
    sure = (np.abs(r0 - 15.0) > 0.1) & (np.abs(r0 - 8.0) > 0.1) & (np.abs(r1 - 4.0) > 0.1)  # beyond chord error
    np.testing.assert_array_equal(occ[sure], truth[sure])


def test_mask_overlap() -> None:
    a = np.zeros((10, 10), dtype=np.uint8)
    b = np.zeros((10, 10), dtype=np.uint8)
    a[2:6, 2:6] = 1  # 16 px
    b[4:8, 2:6] = 1  # 16 px, 8 shared
    assert mask_dice(a, b) == pytest.approx(0.5)
    assert mask_iou(a, b) == pytest.approx(8 / 24)
    assert mask_dice(a, a) == 1.0 and mask_iou(a, a.astype(bool)) == 1.0
    assert mask_dice(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    assert mask_iou(a, np.zeros_like(a)) == 0.0
    with pytest.raises(ValueError, match="shape"):
        mask_dice(a, b[:5])
