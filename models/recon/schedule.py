"""Step schedules shared by the optimisation stages: point counts, early stopping, learning-rate decays."""

from __future__ import annotations

import math
from dataclasses import dataclass


def point_count(step: int, ramp_steps: int, start: int, end: int) -> int:
    """Coarse-to-fine sample count: ``start`` at step 0, geometric ramp to ``end`` at ``ramp_steps``."""
    if ramp_steps <= 0 or start == end:
        return end
    p = min(step / ramp_steps, 1.0)
    return int(start * (end / start) ** p + 0.5)


def cosine_factor(step: int, decay_steps: int, floor: float) -> float:
    """Learning-rate factor: 1 at step 0, cosine down to ``floor`` at ``decay_steps``, then ``floor``."""
    if decay_steps <= 0:
        return 1.0
    p = min(step / decay_steps, 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * p))


@dataclass
class EarlyStopper:
    """Stop when the smoothed loss has not improved by ``rel_tol`` (relative) for ``patience`` steps.

    The loss is smoothed by an exponential moving average (``beta``) because every step sees
    a different random pixel sample. ``patience <= 0`` disables stopping. The best is tracked
    from ``min_steps`` on, so the earliest stop is ``min_steps + patience``: before it the
    average starts from one noisy sample and the loss may rise while the fit warms up, and a
    best recorded there ended fits whose loss was still falling.
    """

    patience: int
    rel_tol: float
    min_steps: int
    beta: float = 0.9
    ema: float = math.nan
    best: float = math.inf
    best_step: int = 0

    def update(self, step: int, loss: float) -> bool:
        """Record ``loss`` at ``step``; True when the optimisation should stop."""
        self.ema = loss if math.isnan(self.ema) else self.beta * self.ema + (1.0 - self.beta) * loss
        if step < self.min_steps:
            return False
        if self.ema < self.best * (1.0 - self.rel_tol):
            self.best = self.ema
            self.best_step = step
        return 0 < self.patience <= step - self.best_step


@dataclass
class DecayAfterStop:
    """Fit at the full learning rate until ``stopper`` fires or ``steps`` have run, then
    ``decay_steps`` more steps with the rate on a cosine down to ``floor`` (the last one at ``floor``).

    At a constant rate Adam keeps moving every parameter by about its rate per step on a random
    pixel sample, so the last step's noise stays in the result; decaying from the start instead
    slows the fit before it has converged. ``decay_steps <= 0``: stop as ``stopper`` says.
    """

    stopper: EarlyStopper
    steps: int
    decay_steps: int
    floor: float
    decay_from: int | None = None

    @property
    def max_steps(self) -> int:
        return self.steps + max(self.decay_steps, 0)

    def factor(self, step: int) -> float:
        """The learning-rate factor for ``step``."""
        if self.decay_from is None:
            return 1.0
        return cosine_factor(step - self.decay_from + 1, self.decay_steps, self.floor)

    def update(self, step: int, loss: float) -> bool:
        """Record ``loss`` at ``step``; True when the optimisation should stop."""
        if self.decay_from is not None:
            return step + 1 - self.decay_from >= self.decay_steps
        if self.stopper.update(step, loss) or step + 1 >= self.steps:
            if self.decay_steps <= 0:
                return True
            self.decay_from = step + 1
        return False
