"""``/v1/jobs``: read one job, list a tenant's jobs (filters + cursor pagination), cancel a job, erase a job."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BeforeValidator

from jobcore.db.models import JobStatus
from jobcore.erasure import erase_job
from jobcore.errors import Conflict
from jobcore.resource import JobOut, JobStatusName, Problem, job_out
from service.api.deps import JobsDep, PrincipalDep, ServicesDep
from service.errors import NotFound
from service.schemas import JobPage

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
_NUMBER_RE = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def _iso8601_only(value: object) -> object:
    """Refuse bare numbers (pydantic would read them as Unix times): the parameter is documented as ISO 8601."""
    if isinstance(value, str) and _NUMBER_RE.match(value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2025-05-01T10:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso8601_only)]
JobId = Annotated[str, Path(max_length=64, description="Job id returned by POST /v1/studies.")]
_NOT_FOUND: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "content": {"application/problem+json": {}},
          "description": "No such job for this tenant (other tenants' jobs are 404 too)"},
    401: {"model": Problem, "content": {"application/problem+json": {}}, "description": "Missing or invalid key"},
}


@router.get("/{job_id}", response_model=JobOut, responses=_NOT_FOUND,
            summary="Status, stage, progress, error and artifact links of one job")
def get_job(job_id: JobId, principal: PrincipalDep, jobs: JobsDep) -> JobOut:
    job = jobs.get(job_id, principal.tenant_id)
    if job is None:
        raise NotFound("no such job", field="job_id")
    return job_out(job)


@router.get("", response_model=JobPage, summary="List jobs, newest first, with filters and a cursor")
def list_jobs(
    principal: PrincipalDep,
    jobs: JobsDep,
    status: Annotated[list[JobStatusName] | None, Query(description="Repeat to match several statuses.")] = None,
    created_after: Annotated[IsoDateTime | None, Query(description="ISO 8601, inclusive.")] = None,
    created_before: Annotated[IsoDateTime | None, Query(description="ISO 8601, exclusive.")] = None,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobPage:
    page = jobs.page(principal.tenant_id, statuses=status or (), created_after=_aware(created_after),
                     created_before=_aware(created_before), cursor=cursor, limit=limit)
    return JobPage(items=[job_out(j) for j in page.items], next_cursor=page.next_cursor)


@router.post(
    "/{job_id}/cancel", response_model=JobOut, responses={
        **_NOT_FOUND,
        202: {"model": JobOut, "description": "Running: it stops at the next stage boundary"},
        409: {"model": Problem, "content": {"application/problem+json": {}}, "description": "Already finished"}},
    summary="Cancel a job (queued: never runs; running: stops at the next stage boundary)",
)
def cancel_job(job_id: JobId, principal: PrincipalDep, services: ServicesDep, response: Response) -> JobOut:
    job, ended = services.jobs.cancel_queued(job_id, principal.tenant_id)
    if job is None:
        raise NotFound("no such job", field="job_id")
    if ended:  # a cancel while queued ends the job here, not in a worker: count it like the worker would
        services.metrics.jobs_finished.labels(JobStatus.CANCELLED.value).inc()
    status = JobStatus(job.status)
    if status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        raise Conflict(f"the job already {status.value}; nothing to cancel", field="job_id")
    if status is JobStatus.RUNNING:
        response.status_code = 202
    return job_out(job)


@router.delete(
    "/{job_id}", status_code=204, response_class=Response, responses={
        204: {"description": "The job, its inputs and its outputs are erased"},
        **_NOT_FOUND,
        409: {"model": Problem, "content": {"application/problem+json": {}},
              "description": "Running: cancel it first (POST /v1/jobs/{id}/cancel)"}},
    summary="Erase a job: its inputs, outputs and record (data retention)",
    description="Idempotent: once erased, the job is gone and a repeated DELETE answers 404 (as for a job that "
                "never existed or belongs to another tenant) and changes nothing.",
)
def erase_job_route(job_id: JobId, principal: PrincipalDep, services: ServicesDep) -> Response:
    if not erase_job(services.jobs, services.store, services.metrics, job_id, principal.tenant_id,
                     actor=f"key:{principal.key_id}"):
        raise NotFound("no such job", field="job_id")
    return Response(status_code=204)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)
