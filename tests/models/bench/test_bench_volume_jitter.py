"""The volume-curve jitter of ``echo4d bench accuracy``: zero for smooth multiples of the truth,
the closed form for an alternating error."""

from __future__ import annotations

import numpy as np
import pytest

from models.bench.accuracy import volume_jitter

TRUE = 100.0 + 40.0 * np.cos(np.linspace(0.0, 2.0 * np.pi, 20, endpoint=False))


@pytest.mark.parametrize("scale", [0.9, 1.0, 1.07])
def test_a_smooth_multiple_of_the_truth_has_no_jitter(scale: float) -> None:
    assert volume_jitter(scale * TRUE, TRUE) == pytest.approx(0.0, abs=1e-12)


def test_an_alternating_error_of_e_gives_4e() -> None:
    e = 0.02
    wobble = 1.0 + e * (-1.0) ** np.arange(20)  # ratio 1 ± e: every second difference is ±4e
    assert volume_jitter(wobble * TRUE, TRUE) == pytest.approx(4 * e)


def test_two_frames_have_no_second_difference() -> None:
    assert volume_jitter(np.array([1.0, 2.0]), np.array([1.0, 1.0])) == 0.0
