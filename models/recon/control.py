"""Progress reporting and cooperative cancellation for the reconstruction stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from models.errors import Echo4DError, ErrorCode

ProgressFn = Callable[[str, float], None]
StepsFn = Callable[[str, int, int], None]
"""``steps(stage, done, total)``: how many of a stage's steps are done (the service's sub-stage progress)."""
StopFn = Callable[[], bool]


class ReconstructionCancelled(Echo4DError):
    """The caller asked the reconstruction to stop (``should_stop()`` returned True)."""

    default_code = ErrorCode.CANCELLED


@dataclass
class StageControl:
    """Reports ``progress(stage, fraction)`` (and ``steps(stage, done, total)`` where the caller counts steps)
    and checks ``should_stop()`` for one stage."""

    stage: str
    progress: ProgressFn | None = None
    should_stop: StopFn | None = None
    steps: StepsFn | None = None

    def report(self, fraction: float, done: int | None = None, total: int | None = None) -> None:
        if self.steps is not None and done is not None and total is not None:
            self.steps(self.stage, done, total)
        if self.progress is not None:
            self.progress(self.stage, min(max(fraction, 0.0), 1.0))

    def check(self) -> None:
        """Raise :class:`ReconstructionCancelled` if the caller asked to stop."""
        if self.should_stop is not None and self.should_stop():
            raise ReconstructionCancelled(f"reconstruction cancelled during stage {self.stage!r}")
