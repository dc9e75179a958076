"""The accuracy bench's target status: issue #14's targets on the test split and on the real LV."""

from __future__ import annotations

from typing import Any

import pytest

from models.bench.accuracy import REAL_LV_TARGETS, AccuracyOptions, accuracy_document


def _rows(ours: float, simpson: float) -> list[dict[str, Any]]:
    """Two cases whose mean absolute EDV / ESV / EF errors are ``ours`` and Simpson's ``simpson``."""
    keys = ("edv_error_ml", "esv_error_ml", "ef_error")
    return [{"case": f"c{k}", "ed_mae_mm": 0.8, "ed_hausdorff_mm": 5.0,
             **{f"abs_{key}": ours * (0.5 + k) for key in keys},
             **{f"simpson_abs_{key}": simpson * (0.5 + k) for key in keys}} for k in range(2)]


@pytest.mark.parametrize(("ours", "simpson", "split_met", "real_met"), [
    (1.0, 2.5, True, True),     # 2.5x better than Simpson's: both targets met
    (1.0, 1.5, False, True),    # better than Simpson's, not twice: the real-LV target only
    (1.0, 0.8, False, False),   # worse than Simpson's
])
def test_volume_targets_compare_with_simpson(ours: float, simpson: float, split_met: bool, real_met: bool) -> None:
    split = accuracy_document(_rows(ours, simpson), AccuracyOptions())["targets"]
    real = accuracy_document(_rows(ours, simpson), AccuracyOptions(), REAL_LV_TARGETS)["targets"]
    for which in ("edv", "esv", "ef"):
        key = f"{which}_error_ratio_simpson_over_ours"
        assert split[key]["value"] == pytest.approx(simpson / ours)
        assert split[key]["met"] is split_met and real[key]["met"] is real_met
    assert split["ed_mae_mm"]["met"] is True and split["ed_hausdorff_mm"]["met"] is False  # 0.8 <= 0.85, 5.0 > 4.5
    assert set(real) == {f"{w}_error_ratio_simpson_over_ours" for w in ("edv", "esv", "ef")}
