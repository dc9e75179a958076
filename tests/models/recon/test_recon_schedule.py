"""Step schedules: early stopping on a plateau, the cosine factor, and the decay after the stop."""

from __future__ import annotations

import math

import pytest

from models.recon.schedule import DecayAfterStop, EarlyStopper, cosine_factor

PLATEAU = [5.0, 4.0, 3.0] + [3.0] * 20
"""Improves for three steps, then flat: a patience-3 stopper fires at step 5."""


def test_cosine_factor_runs_from_one_to_the_floor_and_stays() -> None:
    assert cosine_factor(0, 4, 0.1) == 1.0
    assert cosine_factor(2, 4, 0.1) == pytest.approx(0.55)
    assert cosine_factor(4, 4, 0.1) == pytest.approx(0.1)
    assert cosine_factor(9, 4, 0.1) == pytest.approx(0.1)
    assert cosine_factor(3, 0, 0.1) == 1.0


def test_early_stopper_fires_patience_steps_after_the_last_improvement() -> None:
    stopper = EarlyStopper(patience=3, rel_tol=0.0, min_steps=0, beta=0.0)
    losses = [5.0, 4.0, 3.0, 3.0, 3.0, 3.0]
    assert [stopper.update(i, v) for i, v in enumerate(losses)] == [False] * 5 + [True]


@pytest.mark.parametrize(("min_steps", "fires_at"), [(0, 3), (2, 9)])  # 9 = the last fall (6) + patience
def test_the_best_is_tracked_from_min_steps_on(min_steps: int, fires_at: int) -> None:
    # one low first sample, a rise while the fit warms up, then a steady fall to a plateau
    losses = [1.0, 3.0, 2.9, 2.8, 2.7, 2.6, 2.5] + [2.5] * 10
    stopper = EarlyStopper(patience=3, rel_tol=0.0, min_steps=min_steps, beta=0.0)
    assert next(i for i, v in enumerate(losses) if stopper.update(i, v)) == fires_at


def _run(schedule: DecayAfterStop, losses: list[float]) -> list[float]:
    """The factors of the steps that ran."""
    factors = []
    for step in range(schedule.max_steps):
        factors.append(schedule.factor(step))
        if schedule.update(step, losses[min(step, len(losses) - 1)]):
            break
    return factors


@pytest.mark.parametrize(("plateau", "expected_steps"), [(True, 6 + 4), (False, 8 + 4)])
def test_the_decay_follows_the_stop_or_the_cap(plateau: bool, expected_steps: int) -> None:
    losses = PLATEAU if plateau else [10.0 - i for i in range(20)]
    stopper = EarlyStopper(patience=3, rel_tol=0.0, min_steps=0, beta=0.0)
    factors = _run(DecayAfterStop(stopper, steps=8, decay_steps=4, floor=0.2), losses)
    assert len(factors) == expected_steps
    decay = factors[-4:]
    assert factors[:-4] == [1.0] * (expected_steps - 4)
    assert decay == pytest.approx([0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3, 4)])
    assert decay[-1] == pytest.approx(0.2)


def test_no_decay_stops_where_the_stopper_or_the_cap_says() -> None:
    stopper = EarlyStopper(patience=3, rel_tol=0.0, min_steps=0, beta=0.0)
    assert _run(DecayAfterStop(stopper, steps=8, decay_steps=0, floor=0.2), PLATEAU) == [1.0] * 6
    assert _run(DecayAfterStop(EarlyStopper(0, 0.0, 0), steps=8, decay_steps=0, floor=0.2), [1.0]) == [1.0] * 8
