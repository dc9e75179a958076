"""Step schedules shared by the optimisation stages: point counts and early stopping."""

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
    a different random pixel sample. ``patience <= 0`` disables stopping. Never stops
    before ``min_steps``.
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
        if self.ema < self.best * (1.0 - self.rel_tol):
            self.best = self.ema
            self.best_step = step
        if self.patience <= 0 or step < self.min_steps:
            return False
        return step - self.best_step >= self.patience
