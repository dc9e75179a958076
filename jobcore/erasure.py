"""Erasing a job (``DELETE /v1/jobs/{id}`` and the retention purge): its inputs, its outputs, then its row.

Order matters: a queued job is cancelled first (no worker can claim it any more), the objects go next (a store
failure leaves the row, so repeating the request finishes the work), the row last. A crash in between leaves
objects without a row, which the reconciler's orphan sweep deletes. A running job is not erased (409: cancel it
first). The audit line names the job, the tenant and who asked, never anything of the study.
"""

from __future__ import annotations

import structlog

from jobcore.db.jobs import JobRepository
from jobcore.db.models import JobStatus
from jobcore.errors import Conflict
from jobcore.metrics import Metrics
from jobcore.storage import ObjectStore

log = structlog.get_logger("service.audit")


def erase_job(jobs: JobRepository, store: ObjectStore, metrics: Metrics, job_id: str, tenant_id: str, *,
              actor: str) -> bool:
    """Erase ``job_id`` of ``tenant_id``; True if it existed (False: nothing to do, e.g. erased already)."""
    job = jobs.get(job_id, tenant_id)
    if job is None:
        return False
    if job.status == JobStatus.QUEUED.value:
        job, ended = jobs.cancel_queued(job_id, tenant_id)
        if ended:
            metrics.jobs_finished.labels(JobStatus.CANCELLED.value).inc()
        if job is None:
            return False
    if job.status == JobStatus.RUNNING.value:
        raise Conflict("the job is running: cancel it (POST /v1/jobs/{id}/cancel), then delete it once it stopped",
                       field="job_id")
    objects = store.delete_prefix(f"inputs/{job_id}/") + store.delete_prefix(f"outputs/{job_id}/")
    if not jobs.delete_finished(job_id, tenant_id):
        return False  # erased by a concurrent request meanwhile
    log.info("job_erased", job_id=job_id, tenant_id=tenant_id, actor=actor, status=job.status, objects=objects)
    return True
