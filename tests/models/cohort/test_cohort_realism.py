"""Realism: the real biv-me case (shared data) slices into sensible masks with the simulator
(its metrics vs the cohort distribution are checked in test_cohort_distribution.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.cohort.simulator import simulate_view
from models.geometry.frames import VIEW_NAMES
from models.geometry.mesh import Mesh

REAL = Path(__file__).resolve().parents[3] / "../shared/data/real-lv-4d/biv-me-patient1/bivme_patient1_lv_endo.npz"


@pytest.fixture(scope="module")
def real() -> dict[str, Any]:
    if not REAL.is_file():
        pytest.skip(f"real LV case not available at {REAL} (shared data folder absent)")
    from models.geometry.canonical import load_real_lv_4d

    return load_real_lv_4d(REAL)


def test_real_case_slices_into_plausible_masks(real: dict[str, Any]) -> None:
    ed = int(real["ed_frame"])
    mesh = Mesh(real["vertices"][ed], real["faces"])
    length = float(np.linalg.norm(real["mitral_centre"]))
    for view in VIEW_NAMES:
        mask, plane = simulate_view(mesh, view)
        area_cm2 = mask.sum() * plane.spacing_mm[0] * plane.spacing_mm[1] / 100.0
        assert 20.0 < area_cm2 < 70.0, (view, area_cm2)
        rows = np.nonzero(mask.any(axis=1))[0]
        assert rows.min() * 0.7 == pytest.approx(20.0, abs=1.5)  # apex at the nominal depth
        if view == "A4C":
            extent = (rows.max() - rows.min() + 1) * 0.7
            assert extent == pytest.approx(length, rel=0.1)
    es_mask, _ = simulate_view(Mesh(real["vertices"][int(real["es_frame"])], real["faces"]), "A4C")
    ed_mask, _ = simulate_view(mesh, "A4C")
    assert 0.3 * ed_mask.sum() < es_mask.sum() < 0.8 * ed_mask.sum()
