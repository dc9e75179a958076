"""The reconciler: makes the broker and the object store agree with the job table (the source of truth), periodically.

One pass:
1. running jobs whose heartbeat is stale (their worker died): back to queued and re-enqueued,
   or failed with ``worker_lost`` once ``max_attempts`` claims were used (cancelled if a cancel
   was pending); partial outputs of failed jobs are deleted;
2. queued jobs that the broker lost (Redis restarted, enqueue failed): re-enqueued. With Redis
   the broker's queue and unacked set are scanned, so a job still held there is left alone;
   other brokers fall back to age (``requeue_after_s``): a duplicate message is harmless because
   claiming is atomic;
3. due webhook deliveries are retried;
4. the orphan sweep (at most every ``orphan_grace_s / 4``, and again on the next pass after one that failed):
   store objects no job needs are deleted: the outputs of failed and cancelled jobs (left behind when the
   store was down at the job's own cleanup, or uploaded by a worker whose claim was taken over), and inputs
   or outputs whose job has no row once the newest object of that job's folder is older than
   ``orphan_grace_s`` (a submission that crashed between storing its inputs and inserting its row; a
   submission still uploading is younger than that, so it is never touched); with ``retention_days`` set,
   jobs finished longer ago are erased first (inputs, outputs, row; see ``jobcore.erasure``);
5. abandoned scratch folders (a worker killed mid-job) are removed (``jobcore.scratch``).
Every write is a guarded UPDATE, so several reconcilers (API replicas) can run concurrently; the sweep
only deletes what no job can use again, so running it twice, or in two replicas, is harmless.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from jobcore.db.jobs import JobError, JobRepository
from jobcore.db.models import JobStatus, utcnow
from jobcore.erasure import erase_job
from jobcore.errors import PlatformCode, TransientError
from jobcore.metrics import Metrics
from jobcore.queue import JobQueue, LocalQueue
from jobcore.scratch import sweep_scratch
from jobcore.settings import Settings
from jobcore.storage import ListedObject, ObjectStore, check_key
from jobcore.webhooks import WebhookSender
from models.errors import Echo4DError, InputError

log = structlog.get_logger(__name__)

SWEEP_AREAS = ("outputs", "inputs")
SWEEP_BATCH = 200  # job folders looked up in the job table with one query
_ENDED_UNSUCCESSFULLY = (JobStatus.FAILED.value, JobStatus.CANCELLED.value)


@dataclass
class ReconcileReport:
    requeued_stale: int = 0
    failed_stale: int = 0
    reenqueued: int = 0
    webhooks: int = 0
    orphan_outputs: int = 0  # job folders deleted under outputs/ (failed or cancelled job, or no row)
    orphan_inputs: int = 0  # job folders deleted under inputs/ (no row, older than orphan_grace_s)
    purged: int = 0  # finished jobs erased by the retention setting
    scratch_dirs: int = 0  # abandoned scratch folders of jobs no longer running (worker killed mid-job)


class Reconciler:
    def __init__(self, settings: Settings, jobs: JobRepository, queue: JobQueue, store: ObjectStore,
                 metrics: Metrics, webhooks: WebhookSender | None = None) -> None:
        self._settings = settings
        self._jobs = jobs
        self._queue = queue
        self._store = store
        self._metrics = metrics
        self._webhooks = webhooks
        self._last_sweep: datetime | None = None

    @property
    def sweep_every_s(self) -> float:
        """Period of the orphan sweep (it lists both areas of the store, so not on every pass)."""
        return max(self._settings.reconcile_interval_s, self._settings.orphan_grace_s / 4)

    def run_once(self, now: datetime | None = None) -> ReconcileReport:
        now = now or utcnow()
        report = ReconcileReport()
        self._recover_stale(now, report)
        self._reenqueue_lost(now, report)
        if self._webhooks is not None:
            report.webhooks = self._webhooks.deliver_due(now)
        if self._sweep_due(now):
            self.purge_expired(now, report)
            self.sweep_orphans(now, report)
        with contextlib.suppress(Echo4DError):  # database unreachable: the next pass sweeps
            report.scratch_dirs = sweep_scratch(self._jobs, self._settings.resolved_scratch_dir)
        if report.requeued_stale or report.failed_stale or report.reenqueued or report.orphan_outputs \
                or report.orphan_inputs or report.scratch_dirs or report.purged:
            log.info("reconciled", **vars(report))
        return report

    def purge_expired(self, now: datetime | None = None, report: ReconcileReport | None = None) -> ReconcileReport:
        """Retention: erase the jobs finished more than ``retention_days`` ago (inputs, outputs, row)."""
        now = now or utcnow()
        report = report if report is not None else ReconcileReport()
        days = self._settings.retention_days
        if days <= 0:
            return report
        try:
            for job in self._jobs.finished_before(now - timedelta(days=days), limit=SWEEP_BATCH):
                report.purged += erase_job(self._jobs, self._store, self._metrics, job.id, job.tenant_id,
                                           actor="retention")
        except Echo4DError as exc:
            log.warning("retention_purge_interrupted", code=exc.code.value, purged=report.purged)
        return report

    def _sweep_due(self, now: datetime) -> bool:
        last = self._last_sweep
        return last is None or now < last or (now - last).total_seconds() >= self.sweep_every_s

    def sweep_orphans(self, now: datetime | None = None, report: ReconcileReport | None = None) -> ReconcileReport:
        """Delete the store objects no job needs (see the module docstring); returns the counts.

        Idempotent. A store or database that fails part-way (down, or down again) ends this sweep with a
        warning and leaves the rest for the next pass, which tries again: the sweep is not marked done."""
        now = now or utcnow()
        report = report if report is not None else ReconcileReport()
        try:
            for area in SWEEP_AREAS:
                self._sweep_area(area, now, report)
        except Echo4DError as exc:
            log.warning("orphan_sweep_interrupted", code=exc.code.value, orphan_outputs=report.orphan_outputs,
                        orphan_inputs=report.orphan_inputs)
            self._metrics.reconciler_actions.labels("sweep_interrupted").inc()
            return report
        self._last_sweep = now
        return report

    def _sweep_area(self, area: str, now: datetime, report: ReconcileReport) -> None:
        old_before = now - timedelta(seconds=self._settings.orphan_grace_s)
        batch: dict[str, datetime] = {}
        for job_id, newest in _job_folders(area, self._store.list_objects(f"{area}/")):
            batch[job_id] = newest
            if len(batch) >= SWEEP_BATCH:
                self._sweep_batch(area, batch, old_before, report)
                batch = {}
        if batch:
            self._sweep_batch(area, batch, old_before, report)

    def _sweep_batch(self, area: str, folders: dict[str, datetime], old_before: datetime,
                     report: ReconcileReport) -> None:
        statuses = self._jobs.statuses(folders)
        for job_id, newest in folders.items():
            status = statuses.get(job_id)
            if status is None:  # no row: a crashed submission, or a row deleted since; only once old enough
                if newest >= old_before:
                    continue
                reason = "no_job_row"
            elif area == "outputs" and status in _ENDED_UNSUCCESSFULLY:
                reason = status  # terminal: nothing will ever serve or rewrite these outputs
            else:
                continue
            deleted = self._store.delete_prefix(f"{area}/{job_id}/")
            if not deleted:
                continue
            if area == "outputs":
                report.orphan_outputs += 1
            else:
                report.orphan_inputs += 1
            self._metrics.reconciler_actions.labels(f"orphan_{area}").inc()
            log.info("orphans_deleted", area=area, job_id=job_id, objects=deleted, reason=reason)

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
            fail = JobError(PlatformCode.WORKER_LOST.value,
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


def _job_folders(area: str, objects: Iterator[ListedObject]) -> Iterator[tuple[str, datetime]]:
    """``(job id, newest modification)`` per folder ``{area}/{job id}/`` of a key-ordered listing (a folder's keys
    come together). Keys outside such a folder, and folder names that are not safe keys, are skipped."""
    current: tuple[str, datetime] | None = None
    for obj in objects:
        parts = obj.key.split("/")
        if len(parts) < 3 or parts[0] != area or not _safe_folder(area, parts[1]):
            continue
        if current is not None and current[0] == parts[1]:
            current = (parts[1], max(current[1], obj.modified))
            continue
        if current is not None:
            yield current
        current = (parts[1], obj.modified)
    if current is not None:
        yield current


def _safe_folder(area: str, name: str) -> bool:
    try:
        check_key(f"{area}/{name}")
    except InputError:
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
