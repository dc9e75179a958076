"""Celery tasks: thin wrappers around :func:`worker.runner.run_job`, with a per-process context."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import structlog
from celery import Celery, Task

from jobcore.clients import build_clients
from jobcore.errors import TransientError
from jobcore.metrics import Metrics
from jobcore.queue import RECONSTRUCT_TASK, LocalQueue
from jobcore.scratch import sweep_scratch
from jobcore.settings import Settings
from jobcore.webhooks import WebhookSender
from worker.model_cache import ModelCache
from worker.runner import Outcome, WorkerContext, backoff_s, run_job

log = structlog.get_logger(__name__)


class WorkerRuntime:
    """Builds the :class:`WorkerContext` lazily in the process that runs tasks (safe across fork)."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self._metrics = metrics
        self._ctx: WorkerContext | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def context(self) -> WorkerContext:
        with self._lock:
            if self._ctx is None or self._pid != os.getpid():
                self._ctx = build_worker_context(self.settings, metrics=self._metrics)
                self._pid = os.getpid()
            return self._ctx

    def reset(self) -> None:
        """Forget the parent's context in a freshly forked child (worker_process_init)."""
        with self._lock:
            self._ctx = None
            self._pid = None


def build_worker_context(settings: Settings, *, metrics: Metrics | None = None) -> WorkerContext:
    """The clients of one worker process (no migrations: the API or `echo4d admin migrate` runs them)."""
    m = metrics if metrics is not None else Metrics()
    clients = build_clients(settings, metrics=m, migrate=False, queue=LocalQueue())
    sweep_scratch(clients.jobs, settings.resolved_scratch_dir)  # what a killed predecessor left behind
    return WorkerContext(
        settings=settings, jobs=clients.jobs, store=clients.store, metrics=m,
        models=ModelCache(settings.device, settings.prior_checkpoint, settings.segmenter,
                          settings.torch_threads),
        worker_id=f"{socket.gethostname()}:{os.getpid()}", webhooks=WebhookSender(settings, clients.jobs, m),
        scratch_dir=settings.resolved_scratch_dir,
    )


def register_tasks(app: Celery, runtime: WorkerRuntime) -> None:
    """Attach Echo4D's tasks to ``app``; they resolve their clients through ``runtime``."""
    settings = runtime.settings
    busy_countdown_s = settings.heartbeat_stale_s + 1.0
    busy_max_retries = settings.job_max_attempts + 2 + int(settings.job_hard_time_limit_s // busy_countdown_s)
    # each claim counts an attempt, so the job table ends the retries of a job that keeps failing; the extra
    # retries cover failures before a claim (database unreachable), which count nothing
    transient_max_retries = settings.job_max_attempts + 3

    @app.task(  # type: ignore[untyped-decorator]
        name=RECONSTRUCT_TASK, bind=True, acks_late=True, reject_on_worker_lost=True,
        max_retries=transient_max_retries,
    )
    def reconstruct_job(self: Task[Any, Any], job_id: str) -> str:
        structlog.contextvars.bind_contextvars(job_id=job_id, task_id=self.request.id)
        try:
            outcome = run_job(runtime.context(), job_id)
        except TransientError as exc:
            # store or database unreachable: the job was given back to the table (or never claimed); try again
            # with the same exponential backoff the table's run_after uses
            countdown = backoff_s(self.request.retries + 1, settings.retry_backoff_max_s)
            raise self.retry(exc=exc, countdown=countdown, max_retries=transient_max_retries) from exc
        finally:
            structlog.contextvars.clear_contextvars()
        if outcome is Outcome.BUSY:
            # Another claim holds the job and its heartbeat is fresh. This message is typically the one
            # task_reject_on_worker_lost gave back after that claim's process was killed: keep it, and look
            # again once such a heartbeat would be stale (then the claim succeeds and counts one attempt).
            # If the holder is alive, the job ends meanwhile and the retry is skipped.
            raise self.retry(countdown=busy_countdown_s, max_retries=busy_max_retries)
        return outcome.value

    from celery.signals import worker_process_init

    @worker_process_init.connect(weak=False)  # type: ignore[untyped-decorator]
    def _fresh_child(**_: Any) -> None:
        runtime.reset()
