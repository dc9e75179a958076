"""slice_mask / slice_polygons against closed forms and an independent point-in-polygon fill."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from geometry_shapes import torus_mesh, two_spheres
from matplotlib.path import Path as MplPath

from models.errors import ModelError
from models.geometry.frames import ImagePlane, ProbePose, nominal_plane, plane_axes, rotation_from_axis_angle
from models.geometry.mesh import Mesh, ellipsoid
from models.geometry.slicing import slice_mask, slice_polygons


def _reference_fill(polys: list[np.ndarray], plane: ImagePlane) -> np.ndarray:
    """Even-odd point-in-polygon of every pixel centre (matplotlib), (H, W) uint8."""
    h, w = plane.shape
    sr, sc = plane.spacing_mm
    rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    centres = np.stack([cc.ravel() * sc, rr.ravel() * sr], 1)
    inside = sum(MplPath(p).contains_points(centres).astype(int) for p in polys)
    return (np.asarray(inside) % 2).reshape(h, w).astype(np.uint8)


def _boundary_distance(polys: list[np.ndarray], points: np.ndarray) -> np.ndarray:
    """Distance (N,) from in-plane points (N, 2) to the nearest polygon edge."""
    best = np.full(len(points), np.inf)
    for p in polys:
        a, ab = p, np.roll(p, -1, axis=0) - p
        t = np.clip(((points[:, None] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-300), 0, 1)
        best = np.minimum(best, np.linalg.norm(points[:, None] - (a + t[..., None] * ab), axis=-1).min(1))
    return best


@pytest.mark.parametrize("semi_axes", [(30.0, 20.0, 45.0), (18.0, 25.0, 35.0)])
@pytest.mark.parametrize("spacing", [(0.7, 0.7), (0.5, 0.8)])
def test_ellipsoid_central_slice_matches_closed_form(semi_axes: tuple[float, float, float],
                                                     spacing: tuple[float, float]) -> None:
    a, _, c = semi_axes
    mesh = ellipsoid(semi_axes, subdivisions=5, centre=(0.0, 0.0, c + 5.0))
    plane = nominal_plane("A4C", (256, 256), spacing)  # the x-z plane through the axis
    mask = slice_mask(mesh, plane)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
    sr, sc = spacing
    expected = math.pi * a * c / (sr * sc)
    # Boundary pixels (perimeter / pixel) bound the discretisation error; faceting adds < 0.2 %.
    perimeter_px = math.pi * (3 * (a / sc + c / sr) - math.sqrt((3 * a / sc + c / sr) * (a / sc + 3 * c / sr)))
    assert abs(mask.sum() - expected) < 0.5 * perimeter_px + 0.002 * expected
    rows, cols = np.nonzero(mask)
    # Extents: depth (rows) spans 2c, lateral (cols) spans 2a, up to one pixel and faceting.
    assert abs((rows.max() - rows.min()) * sr - 2 * c) < 2 * sr + 0.01 * c
    assert abs((cols.max() - cols.min()) * sc - 2 * a) < 2 * sc + 0.01 * a
    # Pixels clearly inside / outside the analytic ellipse are classified correctly.
    g = plane.grid_points()
    level = (g[..., 0] / a) ** 2 + ((g[..., 2] - c - 5.0) / c) ** 2
    assert mask[level < 0.98].all() and not mask[level > 1.0].any()


@pytest.mark.parametrize(
    ("view", "tilt_deg", "offset_mm"),
    [("A4C", 0.0, 0.0), ("A2C", 7.0, 1.3), ("A3C", -9.0, -2.1), ("A4C", 3.0, 4.0)],
)
def test_fill_equals_point_in_polygon(view: str, tilt_deg: float, offset_mm: float) -> None:
    mesh = ellipsoid((28.0, 22.0, 40.0), subdivisions=4, centre=(2.0, -1.0, 42.0))
    base = nominal_plane(view, (160, 160), (0.7, 0.6))
    tilt = rotation_from_axis_angle(np.array([0.0, 0.0, 1.0]) + base.pose.rotation[:, 0], math.radians(tilt_deg))
    pose = ProbePose(tilt @ base.pose.rotation, base.pose.translation + offset_mm * base.pose.normal)
    plane = ImagePlane(base.shape, base.spacing_mm, pose)
    mask = slice_mask(mesh, plane)
    polys = slice_polygons(mesh, pose)
    ref = _reference_fill(polys, plane)
    assert mask.sum() > 1000
    # Identical except (at most) for pixel centres lying on the boundary (tie-break convention).
    r, c = np.nonzero(mask != ref)
    centres = np.stack([c * plane.spacing_mm[1], r * plane.spacing_mm[0]], 1)
    assert (_boundary_distance(polys, centres) < 1e-9).all()


def test_vertices_exactly_on_the_plane_are_handled() -> None:
    # The icosphere has vertices and whole edges with y == 0 exactly: the A4C plane (y = 0) hits them.
    mesh = ellipsoid((30.0, 30.0, 30.0), subdivisions=3, centre=(0.0, 0.0, 40.0))
    q = nominal_plane("A4C").pose.world_to_plane(mesh.vertices)
    assert (q[:, 2] == 0.0).sum() > 10
    (poly,) = slice_polygons(mesh, nominal_plane("A4C").pose)
    area = 0.5 * float(np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1]))
    assert area == pytest.approx(math.pi * 30.0**2, rel=0.02)


def test_several_loops_and_holes() -> None:
    # Two spheres side by side: two loops. Torus cut through its equator: annulus (even-odd hole).
    spheres = two_spheres(20.0, 10.0, subdivisions=4).with_vertices(
        two_spheres(20.0, 10.0, subdivisions=4).vertices + np.array([0.0, 0.0, 40.0])
    )
    plane = nominal_plane("A4C", (224, 224), (0.7, 0.7))
    assert len(slice_polygons(spheres, plane.pose)) == 2
    m = slice_mask(spheres, plane)
    assert m.sum() * 0.49 == pytest.approx(2 * math.pi * 400.0, rel=0.03)
    torus = torus_mesh(30.0, 10.0, 96, 48)
    flat = ProbePose(np.eye(3), np.array([-60.0, -60.0, 0.0]))  # the z = 0 plane
    tplane = ImagePlane((200, 200), (0.6, 0.6), flat)
    assert len(slice_polygons(torus, flat)) == 2
    tm = slice_mask(torus, tplane)
    assert tm.sum() * 0.36 == pytest.approx(math.pi * (40.0**2 - 20.0**2), rel=0.02)
    assert tm[100, 100] == 0  # the hole (torus centre) stays empty


def test_outer_loops_are_counter_clockwise_and_misses_are_empty() -> None:
    mesh = ellipsoid((25.0, 25.0, 40.0), subdivisions=3, centre=(0.0, 0.0, 45.0))
    for view in ("A4C", "A2C", "A3C"):
        (poly,) = slice_polygons(mesh, nominal_plane(view).pose)
        area = 0.5 * float(np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1]))
        assert area > 0
    far = ProbePose(plane_axes(0.0), np.array([0.0, 100.0, 0.0]))
    assert slice_polygons(mesh, far) == []
    assert slice_mask(mesh, ImagePlane((32, 32), (1.0, 1.0), far)).sum() == 0


def test_open_mesh_is_rejected() -> None:
    mesh = ellipsoid((25.0, 25.0, 40.0), subdivisions=2, centre=(0.0, 0.0, 45.0))
    pose = nominal_plane("A4C").pose
    side = pose.world_to_plane(mesh.vertices)[mesh.faces][..., 2] >= 0
    crossing = np.nonzero(side.any(axis=1) & ~side.all(axis=1))[0]
    holed = Mesh(mesh.vertices, np.delete(mesh.faces, crossing[0], axis=0))
    with pytest.raises(ModelError):
        slice_polygons(holed, pose)


def test_slice_is_fast() -> None:
    mesh = ellipsoid((25.0, 25.0, 40.0), subdivisions=4, centre=(0.0, 0.0, 45.0))  # 5120 faces
    plane = nominal_plane("A2C")
    slice_mask(mesh, plane)
    t0 = time.process_time()
    for _ in range(10):
        slice_mask(mesh, plane)
    assert (time.process_time() - t0) / 10 < 0.02  # a few ms typical; generous for a loaded CI box
