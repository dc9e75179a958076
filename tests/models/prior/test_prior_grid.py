"""masks_to_grid keeps millimetres: area, depth and lateral position survive any input size/spacing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.errors import ErrorCode, InputError
from models.geometry.frames import nominal_plane
from models.prior.config import PriorConfig
from models.prior.grid import mask_to_grid, masks_to_grid
from models.prior.model import ShapePrior
from models.prior.standin import Ellipsoid, ellipsoid_view_mask

CFG = PriorConfig()  # 64 × 64 cells of 2.5 mm
SHAPE = Ellipsoid(22.0, 19.0, 42.0)


def render(view: str, size: tuple[int, int], spacing: tuple[float, float]) -> np.ndarray:
    return ellipsoid_view_mask(SHAPE, nominal_plane(view, size, spacing))


@pytest.mark.parametrize(("size", "spacing"), [((224, 224), (0.7, 0.7)), ((300, 260), (0.5, 0.6)),
                                               ((80, 90), (2.0, 1.8))])
def test_foreground_area_in_mm2_is_preserved(size: tuple[int, int], spacing: tuple[float, float]) -> None:
    mask = render("A4C", size, spacing)
    grid = mask_to_grid(mask, spacing, CFG)
    area_in = mask.sum() * spacing[0] * spacing[1]
    area_grid = grid.sum() * CFG.grid_spacing_mm**2
    assert area_grid == pytest.approx(area_in, rel=1e-6)


def test_rows_start_at_the_probe_and_centre_columns_coincide() -> None:
    mask = np.zeros((100, 41), dtype=np.uint8)
    mask[40:60, 20] = 1  # centre column, depth 40*0.5 = 20 mm to 29.5 mm (+ half pixel)
    grid = mask_to_grid(mask, (0.5, 0.5), PriorConfig(grid_shape=(32, 32), grid_spacing_mm=1.0))
    rows, cols = np.nonzero(grid > 0)
    # Grid cells are 1 mm, centred at 0, 1, 2 ... mm depth; the stripe covers 19.75–29.75 mm.
    assert rows.min() == 20 and rows.max() == 30
    # Centre column of the input (20) maps to the grid centre (15.5) → the stripe lands in cells 15 and 16.
    assert set(cols.tolist()) == {15, 16}
    assert grid[25, 15] == pytest.approx(0.25) and grid[25, 16] == pytest.approx(0.25)


def test_same_anatomy_at_two_image_sizes_gives_the_same_grid_and_code() -> None:
    spacing = (0.7, 0.7)
    small = {v: render(v, (224, 224), spacing) for v in ("A4C", "A2C", "A3C")}
    large = {v: render(v, (300, 300), spacing) for v in ("A4C", "A2C", "A3C")}
    sp = dict.fromkeys(small, spacing)
    g_small, p_small = masks_to_grid(small, sp, CFG)
    g_large, p_large = masks_to_grid(large, sp, CFG)
    assert p_small.all() and p_large.all()
    assert (g_small - g_large).abs().mean() < 0.01  # pixel centres shift by < 1 px: boundary cells only
    torch.manual_seed(0)
    prior = ShapePrior(CFG).eval()
    z_small = prior.encode_study_frame(small, sp, "cpu")
    z_large = prior.encode_study_frame(large, sp, "cpu")
    z_other = prior.encode_study_frame({v: render(v, (224, 224), (0.9, 0.9)) for v in small},
                                       dict.fromkeys(small, (0.9, 0.9)), "cpu")  # same pixels, larger heart
    assert (z_small - z_large).norm() < 0.1 * (z_small - z_other).norm()


def test_cines_and_missing_views() -> None:
    m = render("A2C", (120, 120), (1.2, 1.2))
    grid, present = masks_to_grid({"A2C": np.stack([m, m, m])}, {"A2C": (1.2, 1.2)}, CFG)
    assert grid.shape == (3, 3, *CFG.grid_shape) and present.tolist() == [False, True, False]
    assert grid[:, 0].abs().sum() == 0 and grid[:, 2].abs().sum() == 0


@pytest.mark.parametrize(("masks", "spacing", "code"), [
    ({"PLAX": np.ones((20, 20))}, {"PLAX": (1.0, 1.0)}, ErrorCode.UNKNOWN_VIEW),
    ({}, {}, ErrorCode.MISSING_VIEW),
    ({"A4C": np.ones((2, 20, 20)), "A2C": np.ones((3, 20, 20))}, {"A4C": (1, 1), "A2C": (1, 1)},
     ErrorCode.FRAME_COUNT_MISMATCH),
    ({"A4C": np.ones((20, 20))}, {"A4C": (0.0, 1.0)}, ErrorCode.BAD_SPACING),
    ({"A4C": np.ones((20, 20))}, {}, ErrorCode.BAD_SPACING),
])
def test_bad_input_is_an_input_error(masks: dict, spacing: dict, code: ErrorCode) -> None:
    with pytest.raises(InputError) as exc:
        masks_to_grid(masks, spacing, CFG)
    assert exc.value.code == code
