"""Run one job: claim it, heartbeat, run the pipeline, record the outcome (the same code in Celery and embedded).

Error policy: bad input (``InputError``) and our own failures (``ModelError``) fail the job at
once; infrastructure failures (``TransientError``) give the job back to the queue and re-raise
so Celery retries with backoff, until ``max_attempts`` claims have been used. A worker that
died mid-job leaves a stale heartbeat; the next claim counts one more attempt, so a study that
kills its worker (e.g. out of memory) is failed with ``worker_lost`` instead of looping.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

from jobcore.artifacts import DICOM_ARTIFACTS
from jobcore.db.jobs import Claim, JobError, JobRepository
from jobcore.db.models import JobStatus, utcnow
from jobcore.errors import PlatformCode, TransientError
from jobcore.metrics import Metrics
from jobcore.scratch import make_scratch
from jobcore.settings import Settings
from jobcore.storage import ObjectStore
from jobcore.webhooks import WebhookSender
from models.errors import Echo4DError, ErrorCode, InputError, ModelError
from worker.control import DeadlineExceeded, JobCancelled, JobControl
from worker.dicom_results import push_configured, push_dicom
from worker.model_cache import ModelCache
from worker.pipeline import run_pipeline
from worker.progress import StepTimes

log = structlog.get_logger(__name__)


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRY = "retry"  # given back to the queue after a transient error
    SKIPPED = "skipped"  # not claimable: finished, cancelled or cancelling
    BUSY = "busy"  # running under another claim whose heartbeat is still fresh (alive, or died moments ago)
    LOST = "lost"  # another worker took the job over while this one ran


@dataclass
class WorkerContext:
    """Everything a worker process needs, built once per process."""

    settings: Settings
    jobs: JobRepository
    store: ObjectStore
    metrics: Metrics
    models: ModelCache
    worker_id: str
    webhooks: WebhookSender | None = None
    scratch_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    step_times: StepTimes = field(default_factory=StepTimes)  # sub-stage durations of this process's jobs (ETA)


def backoff_s(attempt: int, cap_s: float) -> float:
    """Exponential backoff with jitter for retry ``attempt`` (1, 2, ...): 5·3^(attempt-1) s capped at ``cap_s``,
    times a uniform factor in [0.5, 1] (never ~0: a retry storm against a store or database that is coming
    back helps nobody). Attempts 1, 2, 3 wait 2.5-5, 7.5-15, 22.5-45 s, so the default three attempts ride out
    an outage of roughly 10-20 s plus the attempts' own time before the job fails with the transient code."""
    base = min(float(cap_s), 5.0 * 3.0 ** max(attempt - 1, 0))
    return base * random.uniform(0.5, 1.0)


def _error_of(exc: BaseException) -> JobError:
    if isinstance(exc, Echo4DError):
        return JobError(exc.code.value, exc.detail, exc.field)
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return JobError(PlatformCode.OUT_OF_MEMORY.value, "the study needed more memory than the worker has")
    return JobError(ErrorCode.INTERNAL.value, f"unexpected {type(exc).__name__} in the worker")


def _soft_time_limit_types() -> tuple[type[BaseException], ...]:
    try:
        from celery.exceptions import SoftTimeLimitExceeded

        return (SoftTimeLimitExceeded, DeadlineExceeded)
    except ImportError:  # pragma: no cover - celery is part of the api extra
        return (DeadlineExceeded,)


def run_job(ctx: WorkerContext, job_id: str) -> Outcome:
    """Claim ``job_id`` and run it to a recorded outcome. Re-raises ``TransientError`` for a retry."""
    settings = ctx.settings
    now = utcnow()
    claim = ctx.jobs.claim(job_id, ctx.worker_id, now, now - timedelta(seconds=settings.heartbeat_stale_s))
    if claim is None:
        job = ctx.jobs.get(job_id)
        if job is not None and job.status == JobStatus.RUNNING.value and not job.cancel_requested:
            log.info("job_busy", job_id=job_id)
            return Outcome.BUSY
        log.info("job_not_claimable", job_id=job_id)
        return Outcome.SKIPPED
    log.info("job_claimed", job_id=job_id, attempt=claim.attempts, max_attempts=claim.max_attempts)
    if claim.attempts > claim.max_attempts:
        error = JobError(PlatformCode.WORKER_LOST.value,
                         f"the job's worker stopped during each of {claim.max_attempts} attempts "
                         "(killed, out of memory or past its hard time limit)")
        return _finish(ctx, claim, JobStatus.FAILED, error=error)
    started = time.perf_counter()
    ctx.metrics.worker_busy.inc()
    outcome = Outcome.RETRY
    try:
        outcome = _execute(ctx, claim)
        return outcome
    finally:
        ctx.metrics.worker_busy.dec()
        ctx.metrics.job_duration.labels(outcome.value).observe(time.perf_counter() - started)


def _execute(ctx: WorkerContext, claim: Claim) -> Outcome:
    settings = ctx.settings
    workdir = make_scratch(claim.job_id, ctx.scratch_dir)
    if ctx.step_times.empty():  # first job of this process: ETAs from the last finished job's sub-stages
        try:
            last = ctx.jobs.last_substages(claim.profile)
        except TransientError:
            last = None
        if last is not None:
            ctx.step_times.seed(last)
    control = JobControl(ctx.jobs, claim, ctx.metrics, heartbeat_interval_s=settings.heartbeat_interval_s,
                         soft_time_limit_s=settings.job_soft_time_limit_s, step_times=ctx.step_times)
    try:
        with control:
            result = run_pipeline(ctx.store, ctx.models, control, workdir)
            if push_configured(settings):
                pushed = push_dicom(settings, [result.files[n] for n in DICOM_ARTIFACTS if n in result.files])
                result = replace(result, summary={**result.summary, "dicom_push": pushed})
        return _finish(ctx, claim, JobStatus.SUCCEEDED, artifacts=result.artifacts, summary=result.summary,
                       **_ended(control))
    except JobCancelled:
        if control.claim_lost:
            log.warning("job_claim_lost", job_id=claim.job_id)
            return Outcome.LOST
        return _finish(ctx, claim, JobStatus.CANCELLED, **_ended(control),
                       error=JobError(ErrorCode.CANCELLED.value, "cancelled by the client while it ran"))
    except _soft_time_limit_types():
        return _finish(ctx, claim, JobStatus.FAILED, **_ended(control), error=JobError(
            PlatformCode.TIME_LIMIT_EXCEEDED.value, f"the job ran past its {settings.job_soft_time_limit_s} s limit"))
    except (InputError, ModelError) as exc:
        return _finish(ctx, claim, JobStatus.FAILED, error=_error_of(exc), **_ended(control))
    except TransientError as exc:
        if claim.attempts >= claim.max_attempts:
            return _finish(ctx, claim, JobStatus.FAILED, error=_error_of(exc), **_ended(control))
        delay = backoff_s(claim.attempts, settings.retry_backoff_max_s)
        try:
            ctx.jobs.release(claim, utcnow() + timedelta(seconds=delay), _error_of(exc))
        except TransientError:
            log.warning("release_failed", job_id=claim.job_id)  # stale heartbeat → the reconciler requeues it
        log.warning("job_retry", job_id=claim.job_id, code=exc.code.value, attempt=claim.attempts, delay_s=delay)
        raise
    except Echo4DError as exc:
        return _finish(ctx, claim, JobStatus.FAILED, error=_error_of(exc), **_ended(control))
    except Exception as exc:  # anything else is our bug: fail with a code, log the traceback
        log.error("job_crashed", job_id=claim.job_id, error_type=type(exc).__name__, exc_info=exc)
        return _finish(ctx, claim, JobStatus.FAILED, error=_error_of(exc), **_ended(control))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _ended(control: JobControl) -> dict[str, Any]:
    """What a finished job's row keeps of its run: stage timings and the last sub-stage snapshot."""
    return {"timings": control.timings, "substages": control.substages.snapshot()}


def _finish(ctx: WorkerContext, claim: Claim, status: JobStatus, *, error: JobError | None = None,
            artifacts: dict[str, Any] | None = None, summary: dict[str, Any] | None = None,
            timings: dict[str, float] | None = None, substages: dict[str, Any] | None = None) -> Outcome:
    """Record the terminal state (last, after uploads); clean partial outputs of unsuccessful jobs."""
    if status is not JobStatus.SUCCEEDED:
        try:
            ctx.store.delete_prefix(f"outputs/{claim.job_id}/")
        except TransientError:
            log.warning("output_cleanup_failed", job_id=claim.job_id)
    if not ctx.jobs.finish(claim, status, error=error, artifacts=artifacts, summary=summary, timings=timings,
                           substages=substages):
        log.warning("job_claim_lost", job_id=claim.job_id)
        return Outcome.LOST
    ctx.metrics.jobs_finished.labels(status.value).inc()
    log.info("job_finished", job_id=claim.job_id, status=status.value, code=error.code if error else None)
    if ctx.webhooks is not None:
        ctx.webhooks.deliver_for(claim.job_id)
    return Outcome(status.value)
