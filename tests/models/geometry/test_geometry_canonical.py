"""Canonical LV frame: synthetic transforms, and the real biv-me case (aortic valve in A3C)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from models.geometry.canonical import (
    angle_about_z_deg,
    canonical_transform,
    find_apex,
    find_valve_caps,
    load_real_lv_4d,
)
from models.geometry.frames import VIEW_ANGLES_DEG, nominal_plane, rotation_from_axis_angle
from models.geometry.mesh import Mesh, ellipsoid, is_watertight, mesh_volume_ml
from models.geometry.slicing import slice_mask

REAL_CASE = (
    Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "real-lv-4d" / "biv-me-patient1"
    / "bivme_patient1_lv_endo.npz"
)


def test_canonical_transform_axes() -> None:
    rng = np.random.default_rng(0)
    apex, mitral = rng.normal(size=3) * 20, rng.normal(size=3) * 20
    hint = rng.normal(size=3)
    r, t = canonical_transform(apex, mitral, hint)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_allclose(r @ apex + t, 0.0, atol=1e-12)
    m = r @ mitral + t
    np.testing.assert_allclose(m[:2], 0.0, atol=1e-12)
    assert m[2] == pytest.approx(np.linalg.norm(mitral - apex))
    h = r @ hint
    assert h[0] > 0 and abs(h[1]) < 1e-12
    np.testing.assert_allclose(np.cross(r[2], r[0]), r[1], atol=1e-12)  # y = z × x
    with pytest.raises(ValueError):
        canonical_transform(apex, mitral, mitral - apex)


def test_find_apex_on_a_rotated_ellipsoid() -> None:
    lv = ellipsoid((25.0, 25.0, 45.0), 3, centre=(0.0, 0.0, 45.0))  # apex vertex at the origin
    rot = rotation_from_axis_angle(np.array([1.0, -2.0, 0.5]), 0.9)
    v = lv.vertices @ rot.T + np.array([10.0, 20.0, 30.0])
    i = find_apex(v, rot @ np.array([0.0, 0.0, 90.0]) + np.array([10.0, 20.0, 30.0]))
    np.testing.assert_allclose(lv.vertices[i], [0.0, 0.0, 0.0], atol=1e-9)


@pytest.fixture(scope="module")
def real_case() -> dict[str, Any]:
    if not REAL_CASE.is_file():
        pytest.skip(f"real LV case not present at {REAL_CASE} (the shared/ folder beside the repo)")
    return load_real_lv_4d(REAL_CASE)


def test_real_case_in_canonical_frame(real_case: dict[str, Any]) -> None:
    v, f, ed = real_case["vertices"], real_case["faces"], real_case["ed_frame"]
    np.testing.assert_allclose(v[ed, real_case["apex_index"]], 0.0, atol=1e-9)
    mc = real_case["mitral_centre"]
    np.testing.assert_allclose(mc[:2], 0.0, atol=1e-9)
    assert 60.0 < mc[2] < 120.0  # a plausible long axis (mm)
    assert v.shape == (25, 1574, 3) and len(real_case["mitral_faces"]) == 48 and len(real_case["aortic_faces"]) == 24
    for k in range(v.shape[0]):
        mesh = Mesh(v[k], f)
        assert is_watertight(mesh)
        assert mesh_volume_ml(mesh) == pytest.approx(real_case["volumes_ml"][k], rel=1e-6)
    # The cavity lies above the apex: nothing far below z = 0 at ED.
    assert v[ed, :, 2].min() > -1.0


def test_real_aortic_valve_lies_in_the_a3c_plane(real_case: dict[str, Any]) -> None:
    angle = real_case["aortic_angle_deg"]
    assert abs(angle - VIEW_ANGLES_DEG["A3C"]) < 25.0
    # and clearly not in the A4C or A2C planes (nor in the mirror image a flipped y would give)
    assert abs(angle - VIEW_ANGLES_DEG["A2C"]) > 25.0
    assert abs(angle_about_z_deg(real_case["aortic_centre"] * np.array([1.0, -1.0, 1.0])) + 120.0) > 100.0
    # The RV/tricuspid side is on the screen's left in A4C (−x).
    assert math.cos(math.radians(angle)) < 0.5


def test_real_case_slices_into_single_blobs(real_case: dict[str, Any]) -> None:
    ed = real_case["ed_frame"]
    mesh = Mesh(real_case["vertices"][ed], real_case["faces"])
    for view in ("A4C", "A2C", "A3C"):
        mask = slice_mask(mesh, nominal_plane(view))
        area_cm2 = mask.sum() * 0.49 / 100.0
        assert 15.0 < area_cm2 < 60.0
        assert ndimage.label(mask)[1] == 1


def test_valve_caps_need_the_mitral_ids() -> None:
    lv = ellipsoid((25.0, 25.0, 45.0), 2)
    with pytest.raises(ValueError):
        find_valve_caps(lv, np.arange(5))
