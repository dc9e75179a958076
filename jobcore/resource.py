"""The job as clients see it (:class:`JobOut`, built from a row by :func:`job_out`): the API answers with it and
the completion webhook carries it, so it belongs to the job core, not to the HTTP layer."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from jobcore.artifacts import DICOM_ARTIFACTS
from jobcore.db.models import Job, JobStatus, utcnow

# failure codes that are not the client's fault (the job's problem object says 500 for them)
_SERVER_SIDE_CODES = frozenset({
    "checkpoint_invalid", "reconstruction_failed", "internal_error", "time_limit_exceeded", "out_of_memory",
    "store_unavailable", "database_unavailable", "broker_unavailable", "worker_lost",
})
JobStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Problem(BaseModel):
    """RFC 9457 problem details, with Echo4D's stable ``code``."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [{
        "type": "urn:echo4d:problem:bad_spacing", "title": "Unprocessable Content", "status": 422,
        "detail": "views.A4C.pixel_spacing_mm must be a positive finite number, got nan",
        "code": "bad_spacing", "field": "views.A4C.pixel_spacing_mm"}]})

    type: str
    title: str
    status: int
    detail: str
    code: str
    field: str | None = None
    instance: str | None = None


class ArtifactLink(BaseModel):
    href: str
    content_type: str
    size: int | None = None
    etag: str | None = None


class SubstageOut(BaseModel):
    """One sub-stage of the reconstruction: steps done/total and, while it runs, a remaining-time estimate."""

    name: Literal["encode", "shape_fit", "motion", "mesh", "export"]
    status: Literal["pending", "running", "done"]
    steps_done: int = Field(ge=0)
    steps_total: int | None = Field(None, ge=1, description="Known once the sub-stage has started; the shape fit "
                                    "may stop early, below its step budget")
    elapsed_s: float | None = None
    eta_s: float | None = Field(None, description="Seconds left: running, from this job's measured time per step "
                                "(an upper bound for the shape fit); pending, from this worker's previous jobs")


class WebhookDelivery(BaseModel):
    """Delivery state of the completion webhook."""

    state: Literal["pending", "delivered", "failed"]
    attempts: int = Field(ge=0)
    next_attempt_at: datetime | None = Field(None, description="When the next try is due (pending only)")
    last_error: str | None = Field(None, description="Why the last try failed (e.g. 'HTTP 503', 'unreachable')")


class JobOut(BaseModel):
    """A reconstruction job as clients see it."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "3f2c6a1e-5d7b-4f0a-9a59-0c1d2e3f4a5b", "status": "succeeded", "stage": "done", "progress": 100.0,
        "profile": "default", "input_kind": "bundle", "attempts": 1, "max_attempts": 3,
        "created_at": "2025-05-01T10:00:00Z", "started_at": "2025-05-01T10:00:02Z",
        "finished_at": "2025-05-01T10:01:30Z", "updated_at": "2025-05-01T10:01:30Z", "error": None,
        "summary": {"edv_ml": 121.4, "esv_ml": 52.9, "ef_percent": 56.4},
        "substages": [
            {"name": "encode", "status": "done", "steps_done": 1, "steps_total": 1, "elapsed_s": 0.5, "eta_s": None},
            {"name": "shape_fit", "status": "done", "steps_done": 576, "steps_total": 800, "elapsed_s": 78.6,
             "eta_s": None},
            {"name": "motion", "status": "done", "steps_done": 300, "steps_total": 300, "elapsed_s": 132.0,
             "eta_s": None},
            {"name": "mesh", "status": "done", "steps_done": 3, "steps_total": 3, "elapsed_s": 6.1, "eta_s": None},
            {"name": "export", "status": "done", "steps_done": 3, "steps_total": 3, "elapsed_s": 9.8,
             "eta_s": None}],
        "eta_s": 0.0,
        "webhook": "pending",
        "webhook_delivery": {"state": "pending", "attempts": 2, "next_attempt_at": "2025-05-01T10:01:50Z",
                             "last_error": "HTTP 503"},
        "artifacts": {"mesh.glb": {"href": "/v1/jobs/3f2c6a1e-5d7b-4f0a-9a59-0c1d2e3f4a5b/artifacts/mesh.glb",
                                   "content_type": "model/gltf-binary", "size": 482113, "etag": "9b2f..."}},
        "links": {"self": "/v1/jobs/3f2c6a1e-5d7b-4f0a-9a59-0c1d2e3f4a5b"}}]})

    id: str
    status: JobStatusName
    stage: str | None
    progress: float = Field(ge=0, le=100)
    profile: str
    input_kind: str
    attempts: int
    max_attempts: int
    cancel_requested: bool = False
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: Problem | None = None
    summary: dict[str, Any] = Field(default_factory=dict)
    quality: dict[str, Any] | None = Field(
        None, description="The quality gate of a succeeded job: level (good | review | unreliable), score, reasons "
                          "(see docs/report-schema.md); also in summary.quality")
    stage_timings_s: dict[str, float] = Field(default_factory=dict)
    substages: list[SubstageOut] = Field(
        default_factory=list, description="The reconstruction's sub-stages (encode, shape_fit, motion, mesh, export) "
                                          "with steps done/total; empty until the worker reaches them")
    eta_s: float | None = Field(None, description="Estimated seconds until the job ends, from measured step times "
                                "(None while unknown: before the worker measured the sub-stages still to run)")
    artifacts: dict[str, ArtifactLink] = Field(default_factory=dict)
    links: dict[str, str] = Field(default_factory=dict)
    webhook: str | None = Field(None, description="Delivery state of the completion webhook, if one was asked for.")
    webhook_delivery: WebhookDelivery | None = Field(
        None, description="The webhook's attempts, next try and last error (when a callback_url was given)")


def job_out(job: Job) -> JobOut:
    base = f"/v1/jobs/{job.id}"
    status = JobStatus(job.status)
    error = None
    if job.error_code and status in (JobStatus.FAILED, JobStatus.CANCELLED):
        error = Problem(type=f"urn:echo4d:problem:{job.error_code}", title="Job failed" if status is
                        JobStatus.FAILED else "Job cancelled", status=422 if status is JobStatus.FAILED else 409,
                        detail=job.error_detail or "", code=job.error_code, field=job.error_field)
        if job.error_code in _SERVER_SIDE_CODES:
            error.status = 500
    substages: dict[str, Any] = dict(job.substages or {})
    artifacts: dict[str, ArtifactLink] = {}
    if status is JobStatus.SUCCEEDED:
        for name, meta in sorted(job.artifacts.items()):
            artifacts[name] = ArtifactLink(href=f"{base}/artifacts/{name}", content_type=str(meta["content_type"]),
                                           size=meta.get("size"), etag=meta.get("etag"))
    links = {"self": base}
    if any(name in artifacts for name in DICOM_ARTIFACTS):
        links["dicom"] = f"{base}/dicom"
    if not status.terminal:
        links["cancel"] = base
    return JobOut(
        id=job.id, status=status.value, stage=job.stage, progress=job.progress, profile=job.profile,
        input_kind=job.input_kind, attempts=job.attempts, max_attempts=job.max_attempts,
        cancel_requested=job.cancel_requested, created_at=job.created_at, updated_at=job.updated_at,
        started_at=job.started_at, finished_at=job.finished_at, error=error, summary=dict(job.summary or {}),
        quality=(job.summary or {}).get("quality"),
        stage_timings_s={k: float(v) for k, v in (job.stage_timings or {}).items()}, artifacts=artifacts,
        links=links, webhook=job.webhook_state, webhook_delivery=_webhook_delivery(job),
        substages=[SubstageOut.model_validate(item) for item in substages.get("items", [])],
        eta_s=_eta_now(job, substages.get("eta_s")),
    )


def _eta_now(job: Job, eta_s: Any) -> float | None:
    """The stored ETA (as of the row's last update) less the time since, for a running job; 0 once finished."""
    status = JobStatus(job.status)
    if status.terminal:
        return 0.0 if status is JobStatus.SUCCEEDED else None
    if eta_s is None or status is not JobStatus.RUNNING:
        return None
    since = (utcnow() - job.updated_at).total_seconds()
    return round(max(float(eta_s) - since, 0.0), 1)


def _webhook_delivery(job: Job) -> WebhookDelivery | None:
    if job.webhook_state not in ("pending", "delivered", "failed"):
        return None
    return WebhookDelivery.model_validate({"state": job.webhook_state, "attempts": job.webhook_attempts,
                                           "next_attempt_at": job.webhook_next_at if job.webhook_state == "pending"
                                           else None, "last_error": job.webhook_last_error})
