"""Sub-stage progress of one job (encode, shape fit, motion, mesh, export): steps done/total and an ETA.

The reconstruction reports ``steps(label, done, total)`` as it goes (``models.recon`` stage names: encode,
anchor, motion, mesh), the export reports its own steps. The ETA of the running sub-stage comes from its
measured step time in this job (elapsed / done x the steps left); a sub-stage that has not started is
estimated from its measured duration in the previous jobs of this worker process (:class:`StepTimes`; a
fresh process starts from the last job the service finished with the same profile), and is unknown (``None``)
before any job has finished. The shape fit stops early when its loss
settles, so its ETA (from the step budget) is an upper bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

SUBSTAGES: Final[tuple[str, ...]] = ("encode", "shape_fit", "motion", "mesh", "export")
RECON_LABELS: Final[dict[str, str]] = {"encode": "encode", "anchor": "shape_fit", "motion": "motion",
                                      "mesh": "mesh"}
_EMA: Final[float] = 0.5  # weight of the newest job in the per-sub-stage duration estimate


class StepTimes:
    """Measured duration (s) of each sub-stage over the jobs this worker process ran (exponential average)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._duration_s: dict[str, float] = {}

    def record(self, name: str, seconds: float) -> None:
        with self._lock:
            old = self._duration_s.get(name)
            self._duration_s[name] = seconds if old is None else _EMA * seconds + (1 - _EMA) * old

    def duration_s(self, name: str) -> float | None:
        with self._lock:
            return self._duration_s.get(name)

    def empty(self) -> bool:
        with self._lock:
            return not self._duration_s

    def seed(self, snapshot: dict[str, Any]) -> None:
        """Learn from a finished job's stored snapshot (a worker that has not run a job yet, e.g. after a
        restart, takes the durations of the last job the service finished)."""
        for item in snapshot.get("items", []):
            elapsed = item.get("elapsed_s")
            if item.get("status") == "done" and isinstance(elapsed, int | float) and item.get("name") in SUBSTAGES:
                self.record(str(item["name"]), float(elapsed))


@dataclass
class _Sub:
    name: str
    status: str = "pending"  # pending | running | done
    done: int = 0
    total: int | None = None
    started: float | None = None
    ended: float | None = None
    first_step_at: float | None = None  # when step 0 was reported: the time per step is measured from here


@dataclass
class SubstageTracker:
    """Steps and timing of the sub-stages of one job; :meth:`snapshot` is what the job row stores."""

    history: StepTimes | None = None
    clock: Callable[[], float] = time.monotonic
    _subs: dict[str, _Sub] = field(default_factory=lambda: {n: _Sub(n) for n in SUBSTAGES})

    def steps(self, name: str, done: int, total: int) -> bool:
        """Sub-stage ``name`` has done ``done`` of ``total`` steps (starts it, and ends those before it).
        True when a sub-stage started or ended (worth writing at once)."""
        sub = self._subs.get(name)
        if sub is None:
            return False
        now = self.clock()
        changed = False
        for earlier in SUBSTAGES[: SUBSTAGES.index(name)]:
            if self._subs[earlier].status == "running":
                self._end(self._subs[earlier], now)
                changed = True
        if sub.status == "pending":
            sub.status, sub.started = "running", now
            changed = True
        if sub.status != "running":
            return changed
        total = max(int(total), 1)
        sub.done, sub.total = min(max(int(done), sub.done), total), total
        if sub.first_step_at is None:
            sub.first_step_at = now
        if sub.done >= total:
            self._end(sub, now)
            changed = True
        return changed

    def finish(self, name: str) -> None:
        """End ``name`` (e.g. the shape fit stopped early: its remaining steps will not run)."""
        sub = self._subs.get(name)
        if sub is not None and sub.status == "running":
            self._end(sub, self.clock())

    def _end(self, sub: _Sub, now: float) -> None:
        sub.status, sub.ended = "done", now
        if sub.total is not None:
            sub.done = sub.total if sub.done >= sub.total else sub.done
        if self.history is not None and sub.started is not None:
            self.history.record(sub.name, now - sub.started)

    def _remaining_s(self, sub: _Sub, now: float) -> float | None:
        if sub.status == "done":
            return 0.0
        if sub.status == "pending":
            return self.history.duration_s(sub.name) if self.history is not None else None
        if sub.total is None or sub.first_step_at is None or sub.done <= 0:
            return None
        per_step = (now - sub.first_step_at) / sub.done
        return per_step * (sub.total - sub.done)

    def snapshot(self) -> dict[str, Any]:
        """``{"items": [{name, status, steps_done, steps_total, elapsed_s, eta_s}...], "eta_s": …}``; the job's
        ``eta_s`` is the sum of the sub-stages' (None while any of them is unknown)."""
        now = self.clock()
        items = []
        etas: list[float | None] = []
        for name in SUBSTAGES:
            sub = self._subs[name]
            eta = self._remaining_s(sub, now)
            etas.append(eta)
            elapsed = None if sub.started is None else (sub.ended or now) - sub.started
            items.append({"name": name, "status": sub.status, "steps_done": sub.done, "steps_total": sub.total,
                          "elapsed_s": None if elapsed is None else round(elapsed, 2),
                          "eta_s": None if eta is None or sub.status == "done" else round(eta, 1)})
        total = None if any(e is None for e in etas) else round(sum(e for e in etas if e is not None), 1)
        return {"items": items, "eta_s": total}
