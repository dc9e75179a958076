"""The reconciler: makes the broker agree with the job table (the source of truth), periodically.

One pass:
1. running jobs whose heartbeat is stale (their worker died): back to queued and re-enqueued,
   or failed with ``worker_lost`` once ``max_attempts`` claims were used (cancelled if a cancel
   was pending); partial outputs of failed jobs are deleted;
2. queued jobs that the broker lost (Redis restarted, enqueue failed): re-enqueued. With Redis
   the broker's queue and unacked set are scanned, so a job still held there is left alone;
   other brokers fall back to age (``requeue_after_s``): a duplicate message is harmless because
   claiming is atomic;
3. due webhook deliveries are retried.
Every write is a guarded UPDATE, so several reconcilers (API replicas) can run concurrently.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from models.errors import Echo4DError, ErrorCode, TransientError
from service.config import Settings
from service.db.jobs import JobError, JobRepository
from service.db.models import utcnow
from service.metrics import Metrics
from service.queue import JobQueue, LocalQueue
from service.storage import ObjectStore
from service.webhooks import WebhookSender

log = structlog.get_logger(__name__)


@dataclass
class ReconcileReport:
    requeued_stale: int = 0
    failed_stale: int = 0
    reenqueued: int = 0
    webhooks: int = 0


class Reconciler:
    def __init__(self, settings: Settings, jobs: JobRepository, queue: JobQueue, store: ObjectStore,
                 metrics: Metrics, webhooks: WebhookSender | None = None) -> None:
        self._settings = settings
        self._jobs = jobs
        self._queue = queue
        self._store = store
        self._metrics = metrics
        self._webhooks = webhooks

    def run_once(self, now: datetime | None = None) -> ReconcileReport:
        now = now or utcnow()
        report = ReconcileReport()
        self._recover_stale(now, report)
        self._reenqueue_lost(now, report)
        if self._webhooks is not None:
            report.webhooks = self._webhooks.deliver_due(now)
        if report.requeued_stale or report.failed_stale or report.reenqueued:
            log.info("reconciled", **vars(report))
        return report

    def recover_orphans(self) -> ReconcileReport:
        """Embedded start-up: this process is the only worker, so every 'running' job is an orphan."""
        report = ReconcileReport()
        now = utcnow()
        self._recover_stale(now, report, stale_before=now + timedelta(seconds=1))
        if report.requeued_stale or report.failed_stale:
            log.info("recovered_orphans", **vars(report))
        return report

    def _recover_stale(self, now: datetime, report: ReconcileReport, stale_before: datetime | None = None) -> None:
        if stale_before is None:
            stale_before = now - timedelta(seconds=self._settings.heartbeat_stale_s)
        for job in self._jobs.stale_running(stale_before):
            exhausted = job.attempts >= job.max_attempts
            fail = JobError(ErrorCode.WORKER_LOST.value,
                            f"the job's worker stopped during each of {job.max_attempts} attempts "
                            "(killed, out of memory or past its hard time limit)") if exhausted else None
            if not self._jobs.recover_stale(job, fail=fail):
                continue
            if fail is not None or job.cancel_requested:
                report.failed_stale += 1
                self._metrics.reconciler_actions.labels("failed_stale").inc()
                self._metrics.jobs_finished.labels("cancelled" if job.cancel_requested else "failed").inc()
                try:
                    self._store.delete_prefix(f"outputs/{job.id}/")
                except TransientError:
                    log.warning("output_cleanup_failed", job_id=job.id)
            else:
                report.requeued_stale += 1
                self._metrics.reconciler_actions.labels("requeued_stale").inc()
                self._enqueue(job.id, None)

    def _reenqueue_lost(self, now: datetime, report: ReconcileReport) -> None:
        if isinstance(self._queue, LocalQueue):
            self._queue.enqueue("")  # embedded: the worker reads the table; just wake it
            return
        held = self._queue.pending_job_ids()
        before = now - timedelta(seconds=self._settings.requeue_after_s)
        for job in self._jobs.queued_older_than(before):
            if (held is not None and job.id in held) or (job.run_after is not None and job.run_after > now):
                continue
            if self._enqueue(job.id, job.enqueued_at):
                report.reenqueued += 1
                self._metrics.reconciler_actions.labels("reenqueued").inc()

    def _enqueue(self, job_id: str, seen: datetime | None) -> bool:
        """Claim the right to enqueue (guarded on enqueued_at) and publish one message."""
        if not self._jobs.mark_enqueued(job_id, seen, guard=True):
            return False
        try:
            self._queue.enqueue(job_id)
        except TransientError:
            log.warning("reenqueue_failed", job_id=job_id)
            return False
        return True


class ReconcilerThread(threading.Thread):
    """Runs :meth:`Reconciler.run_once` every ``interval_s`` until :meth:`stop`."""

    def __init__(self, reconciler: Reconciler, interval_s: float) -> None:
        super().__init__(name="echo4d-reconciler", daemon=True)
        self._reconciler = reconciler
        self._interval = interval_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            try:
                self._reconciler.run_once()
            except Echo4DError as exc:
                log.warning("reconcile_failed", code=exc.code.value)
            except Exception as exc:
                log.error("reconcile_crashed", error_type=type(exc).__name__, exc_info=exc)

    def stop(self) -> None:
        self._stop_event.set()
