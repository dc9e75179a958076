"""Mesh extraction from an SDF and the evaluation bookkeeping, checked against a closed-form shape."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from models.geometry.mesh import is_watertight, mesh_volume_ml
from models.prior.data import EvalCase
from models.prior.evaluate import evaluate_case, extract_mesh, summarise
from models.prior.standin import Ellipsoid

SHAPE = Ellipsoid(21.0, 18.0, 40.0)


class AnalyticPrior:
    """Duck-typed prior whose SDF is the exact ellipsoid SDF plus an offset given by z[0]."""

    def sdf(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        d = SHAPE.signed_distance(x[0].numpy().astype(np.float64))
        return torch.from_numpy(d).float()[None] - z[0, 0]

    def encode_study_frame(self, masks: dict[str, Any], spacing: dict[str, Any], device: Any) -> torch.Tensor:
        return torch.tensor([float(len(masks) == 1)])  # single view → surface pushed out by 1 mm


def test_extracted_mesh_matches_the_exact_surface() -> None:
    mesh = extract_mesh(AnalyticPrior(), torch.zeros(1))  # type: ignore[arg-type]
    assert is_watertight(mesh)
    assert mesh_volume_ml(mesh) == pytest.approx(SHAPE.volume_mm3 / 1000.0, rel=0.01)
    radii = np.linalg.norm((mesh.vertices - SHAPE.centre) / SHAPE.axes, axis=1)
    assert np.abs(radii - 1.0).max() < 0.01


def test_empty_interior_is_reported() -> None:
    with pytest.raises(ValueError, match="no interior"):
        extract_mesh(AnalyticPrior(), torch.tensor([-200.0]))  # type: ignore[arg-type]


def test_case_rows_and_summary() -> None:
    mesh = SHAPE.mesh(4)
    masks = {v: np.ones((4, 4), dtype=np.uint8) for v in ("A4C", "A2C", "A3C")}
    case = EvalCase(7, {"ed": mesh}, {"ed": masks}, dict.fromkeys(masks, (1.0, 1.0)))
    rows = evaluate_case(AnalyticPrior(), case, [("A4C", "A2C", "A3C"), ("A2C",)], "cpu",  # type: ignore[arg-type]
                         phases=("ed",))
    assert [r["views"] for r in rows] == ["A4C+A2C+A3C", "A2C"]
    exact, offset = rows
    assert exact["mae_mm"] < 0.1 and exact["dice"] > 0.98
    assert offset["mae_mm"] == pytest.approx(1.0, abs=0.1)  # the surface moved out by 1 mm everywhere
    area = 4 * math.pi * ((SHAPE.a * SHAPE.b) ** 1.6 + (SHAPE.a * SHAPE.c) ** 1.6 + (SHAPE.b * SHAPE.c) ** 1.6) ** (
        1 / 1.6) / 3 ** (1 / 1.6)  # Knud Thomsen's surface area formula (±1 %)
    assert offset["volume_error_ml"] == pytest.approx(area / 1000.0, rel=0.05)
    summary = summarise(rows)
    assert summary["A2C"]["n"] == 1 and summary["A2C@ed"]["mae_mm"] == offset["mae_mm"]
