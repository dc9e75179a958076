"""What a running job needs besides its inputs: heartbeat, cancellation, deadline and stage bookkeeping.

A :class:`JobControl` is created per claimed job. Its heartbeat thread refreshes the job row
every ``heartbeat_interval_s`` and learns about cancellation (or a lost claim) from the same
UPDATE; the pipeline calls :meth:`JobControl.checkpoint` at each stage boundary and passes
:meth:`JobControl.should_stop` down to the reconstruction loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import structlog

from jobcore.db.jobs import Claim, JobRepository
from jobcore.db.models import utcnow
from jobcore.errors import PlatformCode
from jobcore.metrics import Metrics
from models.errors import Echo4DError
from worker.progress import RECON_LABELS, StepTimes, SubstageTracker

log = structlog.get_logger(__name__)

# overall progress (percent) at the start and end of each stage
STAGE_SPAN: dict[str, tuple[float, float]] = {
    "fetch": (0.0, 3.0), "ingest": (3.0, 10.0), "reconstruct": (10.0, 88.0), "export": (88.0, 95.0),
    "upload": (95.0, 100.0),
}
# share of the reconstruct stage taken by each step models.recon reports through progress(label, fraction)
RECON_STEP_SPAN: dict[str, tuple[float, float]] = {
    "encode": (0.0, 0.05), "anchor": (0.05, 0.55), "motion": (0.55, 0.92), "mesh": (0.92, 1.0),
}


class JobCancelled(Exception):
    """The client cancelled the job, or another worker took it over; stop without marking a result."""


class DeadlineExceeded(Echo4DError):
    """The job ran past its soft time limit."""

    default_code = PlatformCode.TIME_LIMIT_EXCEEDED


class JobControl:
    def __init__(self, jobs: JobRepository, claim: Claim, metrics: Metrics, *, heartbeat_interval_s: float,
                 soft_time_limit_s: float, step_times: StepTimes | None = None) -> None:
        self._jobs = jobs
        self.claim = claim
        self._metrics = metrics
        self._interval = heartbeat_interval_s
        self._deadline = time.monotonic() + soft_time_limit_s
        self._cancelled = threading.Event()
        self.claim_lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{claim.job_id[:8]}", daemon=True)
        self.timings: dict[str, float] = {}
        self._stage = "fetch"
        self._last_progress_write = 0.0
        self._progress = 0.0
        self.substages = SubstageTracker(step_times)
        self._write_now = False  # a sub-stage started or ended: the next progress write skips the throttle

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> JobControl:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 5)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            self.beat(utcnow())

    def beat(self, now: datetime) -> None:
        """One heartbeat (also callable directly by tests)."""
        try:
            ours, cancel = self._jobs.heartbeat(self.claim, now)
        except Echo4DError:
            log.warning("heartbeat_failed", job_id=self.claim.job_id)
            return
        if not ours:
            self.claim_lost = True
        if cancel or not ours:
            self._cancelled.set()

    # ------------------------------------------------------------------ cooperative stops
    def should_stop(self) -> bool:
        """True once the job is cancelled, taken over, or past its soft time limit."""
        return self._cancelled.is_set() or time.monotonic() > self._deadline

    def checkpoint(self) -> None:
        """Raise at a stage boundary if the job must stop (cancel is also re-read from the table here)."""
        if not self._cancelled.is_set() and self._jobs.cancel_requested(self.claim):
            self._cancelled.set()
        if self._cancelled.is_set():
            raise JobCancelled(self.claim.job_id)
        if time.monotonic() > self._deadline:
            raise DeadlineExceeded("the job ran past its time limit")

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Check for a stop, record the stage start in the table, time it."""
        self.checkpoint()
        self._stage = name
        self._progress = max(self._progress, STAGE_SPAN[name][0])
        self._jobs.set_stage(self.claim, name, self._progress, self.timings, self.substages.snapshot())
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self.timings[name] = round(elapsed, 3)
        self._metrics.stage_duration.labels(name).observe(elapsed)

    def progress(self, label: str, fraction: float) -> None:
        """Progress of step ``label`` (0..1) inside the current stage; monotonic, written at most once a second
        (and at once when a sub-stage started or ended).

        Also a stop point: the reconstruction reports progress more often than it polls ``should_stop``, so a
        cancelled or timed-out job raises here (``JobCancelled`` / ``DeadlineExceeded``, from in-memory state
        only: the heartbeat thread keeps the cancel flag current)."""
        if self._cancelled.is_set():
            raise JobCancelled(self.claim.job_id)
        if time.monotonic() > self._deadline:
            raise DeadlineExceeded("the job ran past its time limit")
        step_lo, step_hi = RECON_STEP_SPAN.get(label, (0.0, 1.0)) if self._stage == "reconstruct" else (0.0, 1.0)
        within = step_lo + (step_hi - step_lo) * min(max(fraction, 0.0), 1.0)
        lo, hi = STAGE_SPAN[self._stage]
        self._progress = max(self._progress, lo + (hi - lo) * within)
        now = time.monotonic()
        if now - self._last_progress_write < 1.0 and not self._write_now:
            return
        self._last_progress_write = now
        self._write_now = False
        try:
            self._jobs.set_stage(self.claim, self._stage, self._progress, substages=self.substages.snapshot())
        except Echo4DError:
            log.warning("progress_write_failed", job_id=self.claim.job_id)

    def steps(self, label: str, done: int, total: int) -> None:
        """``done`` of ``total`` steps of sub-stage ``label`` (a ``models.recon`` stage name or ``export``); the
        row is written by the :meth:`progress` call that follows (``StageControl.report`` calls both)."""
        if self.substages.steps(RECON_LABELS.get(label, label), done, total):
            self._write_now = True

    def export_step(self, done: int, total: int) -> None:
        """Step ``done`` of ``total`` of the export (outputs, DICOM results, packaging): counted and written."""
        if done == 0:
            self.substages.finish("mesh")
        self.steps("export", done, total)
        self.progress("export", done / max(total, 1))
