"""The embedded worker: a thread inside the API process running the same ``run_job`` as Celery.

Why a thread and not Celery's in-memory transport: the embedded mode has no broker to lose
messages, and the job table already is a queue (``next_claimable`` + the atomic claim), so a
thread that claims the oldest queued job exercises exactly the distributed claim/heartbeat/
attempt code without a second queue to keep consistent. ``LocalQueue.enqueue`` wakes it.
"""

from __future__ import annotations

import threading
import time

import structlog

from models.errors import TransientError
from service.db.models import utcnow
from worker.runner import WorkerContext, backoff_s, run_job

log = structlog.get_logger(__name__)


class EmbeddedWorker(threading.Thread):
    def __init__(self, ctx: WorkerContext, wakeup: threading.Event, poll_s: float = 2.0) -> None:
        super().__init__(name="echo4d-embedded-worker", daemon=True)
        self._ctx = ctx
        self._wakeup = wakeup
        self._poll_s = poll_s
        self._stop_event = threading.Event()
        self.jobs_run = 0

    def run(self) -> None:
        failures = 0
        while not self._stop_event.is_set():
            try:
                job_id = self._ctx.jobs.next_claimable(utcnow())
                if job_id is None:
                    self._wakeup.wait(self._poll_s)
                    self._wakeup.clear()
                    continue
                run_job(self._ctx, job_id)
                self.jobs_run += 1
                failures = 0
            except TransientError as exc:
                failures += 1
                log.warning("embedded_worker_retry", code=exc.code.value)
                self._stop_event.wait(backoff_s(failures, self._ctx.settings.retry_backoff_max_s))
            except Exception as exc:  # keep the thread alive; the job (if claimed) was already marked
                log.error("embedded_worker_error", error_type=type(exc).__name__, exc_info=exc)
                time.sleep(1.0)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop_event.set()
        self._wakeup.set()
        self.join(timeout)
