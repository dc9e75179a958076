"""Turning an accepted upload into a queued job: inputs to the store, a row in the table, a message.

Order matters for crash safety: inputs are uploaded under a fresh ``inputs/{job_id}/`` first,
the row is inserted (the idempotency key is a unique index), and only then is the job
enqueued. A store failure part-way (full, unreachable) deletes the inputs already stored; a crash
or an unreachable database before the insert leaves only unreferenced inputs; a crash or broker
outage after it leaves a queued row that the reconciler enqueues.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NamedTuple
from uuid import uuid4

import structlog

from jobcore.db.models import Job, JobStatus, utcnow
from jobcore.errors import Conflict, PlatformCode, TransientError
from jobcore.storage import input_key
from service.context import Services

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class InputPart:
    """One uploaded input: stored as ``inputs/{job_id}/{name}`` (``name`` never holds client values)."""

    name: str
    stream: BinaryIO
    size: int
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class NewSubmission:
    kind: str  # "bundle" | "files" | "dicom"
    parts: list[InputPart]
    profile: str
    callback_url: str | None = None
    idempotency_key: str | None = None
    sidecars: dict[str, Any] = field(default_factory=dict)  # small JSON documents stored beside the inputs
    retry_failed: bool = False  # a failed/cancelled job under the same key is replaced by a new one (PACS retries)


class Submitted(NamedTuple):
    """What :func:`submit` did: the job, whether it was created now, and the failed/cancelled job it replaces."""

    job: Job
    created: bool
    replaces: str | None = None


def sha256_of(stream: BinaryIO) -> str:
    """Hash a seekable stream in chunks and rewind it."""
    digest = hashlib.sha256()
    stream.seek(0)
    while chunk := stream.read(1024 * 1024):
        digest.update(chunk)
    stream.seek(0)
    return digest.hexdigest()


def fingerprint(sub: NewSubmission) -> str:
    """What makes two requests 'the same body' for Idempotency-Key: inputs, options and sidecars."""
    digest = hashlib.sha256()
    options = {"kind": sub.kind, "profile": sub.profile, "callback_url": sub.callback_url, "sidecars": sub.sidecars}
    digest.update(json.dumps(options, sort_keys=True).encode())
    for part in sub.parts:
        digest.update(f"\n{part.name}:{part.size}:{sha256_of(part.stream)}".encode())
    return digest.hexdigest()


def _same_or_conflict(existing: Job, body_hash: str) -> Job:
    if existing.input_sha256 != body_hash:
        raise Conflict("this Idempotency-Key was already used with a different request body",
                       field="Idempotency-Key")
    return existing


def _store_inputs(services: Services, sub: NewSubmission, job_id: str) -> tuple[list[str], int]:
    """Upload the inputs under ``inputs/{job_id}/``; if one fails (store full or unreachable), the ones already
    stored are deleted again (best effort) before the error propagates."""
    keys: list[str] = []
    total = 0
    try:
        for part in sub.parts:
            key = input_key(job_id, part.name)
            part.stream.seek(0)
            services.store.put_stream(key, part.stream, length=part.size, content_type=part.content_type)
            keys.append(key)
            total += part.size
        for name, doc in sub.sidecars.items():
            raw = json.dumps(doc, sort_keys=True).encode()
            services.store.put_stream(input_key(job_id, name), io.BytesIO(raw), length=len(raw),
                                      content_type="application/json")
    except BaseException:
        if keys:  # something was stored before the failure (a store that refused the first write holds nothing)
            _delete_inputs(services, job_id)
        raise
    return keys, total


def _insert(services: Services, tenant_id: str, sub: NewSubmission, job_id: str, body_hash: str, keys: list[str],
            total: int) -> tuple[Job, bool]:
    now = utcnow()
    row = Job(
        id=job_id, tenant_id=tenant_id, status=JobStatus.QUEUED.value, stage=None, progress=0.0, profile=sub.profile,
        input_kind=sub.kind, input_keys=keys, input_sha256=body_hash, input_bytes=total,
        idempotency_key=sub.idempotency_key, attempts=0, max_attempts=services.settings.job_max_attempts,
        cancel_requested=False, artifacts={}, summary={}, stage_timings={}, callback_url=sub.callback_url,
        webhook_attempts=0, created_at=now, updated_at=now,
    )
    return services.jobs.create(row)


def _delete_inputs(services: Services, job_id: str) -> None:
    try:
        services.store.delete_prefix(f"inputs/{job_id}/")
    except Exception:
        log.warning("input_cleanup_failed", job_id=job_id)


_RETRYABLE = (JobStatus.FAILED.value, JobStatus.CANCELLED.value)


def submit(services: Services, tenant_id: str, sub: NewSubmission) -> Submitted:
    """Store inputs, insert the job, enqueue it. An idempotent replay is (job, created=False); with
    ``sub.retry_failed`` a failed or cancelled job under the same key is not replayed: its key is released and a
    new job is created (``replaces`` names the old one)."""
    body_hash = fingerprint(sub)
    jobs = services.jobs
    replaces = None
    if sub.idempotency_key is not None:
        existing = jobs.find_by_idempotency(tenant_id, sub.idempotency_key)
        if existing is not None and sub.retry_failed and existing.status in _RETRYABLE:
            jobs.release_idempotency_key(existing.id, sub.idempotency_key)  # False: a concurrent retry freed it
            replaces = existing.id
        elif existing is not None:
            return Submitted(_same_or_conflict(existing, body_hash), False)

    job_id = str(uuid4())
    keys, total = _store_inputs(services, sub, job_id)
    # If the insert fails (database unreachable) the inputs stay: the commit may have happened before the
    # connection dropped, and deleting them could break a job that exists. Unreferenced inputs are the price.
    try:
        job, created = _insert(services, tenant_id, sub, job_id, body_hash, keys, total)
    except TransientError as exc:
        if exc.code is PlatformCode.STORE_UNAVAILABLE:  # the database's disk is full: surely not committed
            _delete_inputs(services, job_id)
        raise
    if not created:  # lost a race with a concurrent request carrying the same key
        _delete_inputs(services, job_id)
        return Submitted(_same_or_conflict(job, body_hash), False)

    services.metrics.jobs_submitted.labels(sub.kind).inc()
    services.metrics.upload_bytes.inc(job.input_bytes)
    try:
        services.queue.enqueue(job_id)
        jobs.mark_enqueued(job_id)
    except TransientError:
        log.warning("enqueue_deferred", job_id=job_id, reason="broker unreachable; the reconciler will enqueue it")
    log.info("job_submitted", job_id=job_id, kind=sub.kind, profile=sub.profile, input_bytes=job.input_bytes,
             replaces=replaces)
    return Submitted(jobs.get(job_id) or job, True, replaces)
