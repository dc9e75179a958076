"""The job repository: every read and guarded write of the job table, each in its own transaction.

Workers change a job only through conditional UPDATEs that name the ``claim_token`` they got
from :meth:`JobRepository.claim`; a worker whose claim was taken over (stale heartbeat,
reconciler) therefore cannot overwrite the newer attempt's state.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import and_, case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from jobcore.db.engine import transient_db
from jobcore.db.models import Job, JobStatus, utcnow
from models.errors import ErrorCode, InputError

TERMINAL = (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)


@dataclass(frozen=True)
class Claim:
    """What a worker holds while it runs a job."""

    job_id: str
    token: str
    attempts: int
    max_attempts: int
    tenant_id: str
    profile: str
    input_kind: str
    input_keys: list[str]


@dataclass(frozen=True)
class JobError:
    code: str
    detail: str
    field: str | None = None


@dataclass(frozen=True)
class Page:
    items: list[Job]
    next_cursor: str | None


def encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        when = datetime.fromisoformat(created)
        if when.tzinfo is None or not isinstance(job_id, str):  # ours are always aware, with a string id
            raise ValueError("not a cursor of this API")
        return when, job_id
    except (ValueError, TypeError, RecursionError) as exc:
        raise InputError("cursor is not one this API returned", code=ErrorCode.VALIDATION_FAILED,
                         field="cursor") from exc


class JobRepository:
    """Job table operations over a session factory (one short transaction per call)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # ------------------------------------------------------------------ submission and reads
    def create(self, job: Job) -> tuple[Job, bool]:
        """Insert ``job``; with an idempotency key already used, return (existing job, False)."""
        try:
            with transient_db(), self._sessions.begin() as s:
                s.add(job)
            return job, True
        except IntegrityError:
            if job.idempotency_key is None:
                raise
            existing = self.find_by_idempotency(job.tenant_id, job.idempotency_key)
            if existing is None:
                raise
            return existing, False

    def release_idempotency_key(self, job_id: str, key: str) -> bool:
        """Free ``key`` held by the failed or cancelled job ``job_id`` so a retry can create a new job under it;
        False when the job no longer holds it or is not failed/cancelled (a concurrent retry got there first)."""
        done = (JobStatus.FAILED.value, JobStatus.CANCELLED.value)
        with transient_db(), self._sessions.begin() as s:
            res = s.execute(update(Job).where(Job.id == job_id, Job.idempotency_key == key, Job.status.in_(done))
                            .values(idempotency_key=None, updated_at=utcnow()))
            return bool(getattr(res, "rowcount", 0))

    def get(self, job_id: str, tenant_id: str | None = None) -> Job | None:
        with transient_db(), self._sessions() as s:
            job = s.get(Job, job_id)
            if job is None or (tenant_id is not None and job.tenant_id != tenant_id):
                return None
            return job

    def find_by_idempotency(self, tenant_id: str, key: str) -> Job | None:
        with transient_db(), self._sessions() as s:
            return s.scalars(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)).first()

    def page(
        self, tenant_id: str, *, statuses: Sequence[str] = (), created_after: datetime | None = None,
        created_before: datetime | None = None, cursor: str | None = None, limit: int = 50,
    ) -> Page:
        """Newest first; ``cursor`` continues after the last item of the previous page."""
        q = select(Job).where(Job.tenant_id == tenant_id)
        if statuses:
            q = q.where(Job.status.in_(list(statuses)))
        if created_after is not None:
            q = q.where(Job.created_at >= created_after)
        if created_before is not None:
            q = q.where(Job.created_at < created_before)
        if cursor:
            c_created, c_id = decode_cursor(cursor)
            q = q.where(or_(Job.created_at < c_created, and_(Job.created_at == c_created, Job.id < c_id)))
        q = q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
        with transient_db(), self._sessions() as s:
            rows = list(s.scalars(q))
        more = len(rows) > limit
        items = rows[:limit]
        return Page(items, encode_cursor(items[-1]) if more and items else None)

    def running_ids(self) -> list[str]:
        """Ids of the jobs running now (their workers' scratch folders are in use)."""
        with transient_db(), self._sessions() as s:
            return list(s.scalars(select(Job.id).where(Job.status == JobStatus.RUNNING.value)))

    def counts_by_status(self) -> dict[str, int]:
        with transient_db(), self._sessions() as s:
            rows = s.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        counts = {st.value: 0 for st in JobStatus}
        counts.update({str(status): int(n) for status, n in rows})
        return counts

    # ------------------------------------------------------------------ queue bookkeeping
    def mark_enqueued(self, job_id: str, seen_enqueued_at: datetime | None = None, *, guard: bool = False) -> bool:
        """Record an enqueue; with ``guard`` only if nobody re-enqueued since ``seen_enqueued_at``."""
        now = utcnow()
        q = update(Job).where(Job.id == job_id, Job.status == JobStatus.QUEUED.value)
        if guard:
            q = q.where(Job.enqueued_at.is_(None) if seen_enqueued_at is None else Job.enqueued_at == seen_enqueued_at)
        return self._exec(q.values(enqueued_at=now, updated_at=now))

    def queued_older_than(self, before: datetime, limit: int = 500) -> list[Job]:
        q = (select(Job).where(Job.status == JobStatus.QUEUED.value,
                               or_(Job.enqueued_at.is_(None), Job.enqueued_at < before))
             .order_by(Job.created_at).limit(limit))
        with transient_db(), self._sessions() as s:
            return list(s.scalars(q))

    def next_claimable(self, now: datetime) -> str | None:
        """Oldest queued job whose retry delay has passed (the embedded worker's queue)."""
        q = (select(Job.id).where(Job.status == JobStatus.QUEUED.value,
                                  or_(Job.run_after.is_(None), Job.run_after <= now))
             .order_by(Job.created_at, Job.id).limit(1))
        with transient_db(), self._sessions() as s:
            return s.scalars(q).first()

    # ------------------------------------------------------------------ cancellation
    def cancel(self, job_id: str, tenant_id: str) -> Job | None:
        """Queued → cancelled now; running → cancel requested (the worker stops at a stage boundary)."""
        return self.cancel_queued(job_id, tenant_id)[0]

    def cancel_queued(self, job_id: str, tenant_id: str) -> tuple[Job | None, bool]:
        """:meth:`cancel`, also telling whether this call ended a queued job (it counts as finished)."""
        now = utcnow()
        with transient_db(), self._sessions.begin() as s:
            ended = s.execute(update(Job).where(Job.id == job_id, Job.tenant_id == tenant_id,
                                                Job.status == JobStatus.QUEUED.value)
                              .values(status=JobStatus.CANCELLED.value, cancel_requested=True, finished_at=now,
                                      updated_at=now, error_code=ErrorCode.CANCELLED.value,
                                      error_detail="cancelled by the client before it ran",
                                      webhook_state=_webhook_state_for(Job.callback_url), webhook_next_at=now))
            s.execute(update(Job).where(Job.id == job_id, Job.tenant_id == tenant_id,
                                        Job.status == JobStatus.RUNNING.value)
                      .values(cancel_requested=True, updated_at=now))
        return self.get(job_id, tenant_id), bool(ended.rowcount == 1)  # type: ignore[attr-defined]

    def delete_finished(self, job_id: str, tenant_id: str) -> bool:
        """Delete the row of a finished (succeeded/failed/cancelled) job of ``tenant_id``; False if none."""
        return self._exec(delete(Job).where(Job.id == job_id, Job.tenant_id == tenant_id,
                                            Job.status.in_(TERMINAL)))

    def finished_before(self, before: datetime, limit: int = 100) -> list[Job]:
        """Finished jobs whose ``finished_at`` is older than ``before`` (retention), oldest first."""
        q = (select(Job).where(Job.status.in_(TERMINAL), Job.finished_at < before)
             .order_by(Job.finished_at).limit(limit))
        with transient_db(), self._sessions() as s:
            return list(s.scalars(q))

    # ------------------------------------------------------------------ the worker's side
    def claim(self, job_id: str, worker_id: str, now: datetime, stale_before: datetime) -> Claim | None:
        """Atomically take a queued job, or a running one whose heartbeat is older than ``stale_before``."""
        token = str(uuid4())
        q = (update(Job)
             .where(Job.id == job_id, Job.cancel_requested.is_(False),
                    or_(Job.status == JobStatus.QUEUED.value,
                        and_(Job.status == JobStatus.RUNNING.value, Job.heartbeat_at < stale_before)))
             .values(status=JobStatus.RUNNING.value, attempts=Job.attempts + 1, claim_token=token,
                     worker_id=worker_id[:200], heartbeat_at=now, updated_at=now, run_after=None,
                     started_at=func.coalesce(Job.started_at, now), stage="fetch", progress=0.0,
                     substages=None))
        if not self._exec(q):
            return None
        job = self.get(job_id)
        if job is None or job.claim_token != token:
            return None
        return Claim(job.id, token, job.attempts, job.max_attempts, job.tenant_id, job.profile, job.input_kind,
                     [str(k) for k in job.input_keys])

    def heartbeat(self, claim: Claim, now: datetime) -> tuple[bool, bool]:
        """Refresh the heartbeat; returns (still ours, cancel requested)."""
        with transient_db(), self._sessions.begin() as s:
            res = s.execute(update(Job).where(Job.id == claim.job_id, Job.claim_token == claim.token,
                                              Job.status == JobStatus.RUNNING.value)
                            .values(heartbeat_at=now).returning(Job.cancel_requested))
            row = res.first()
        return (row is not None, bool(row[0]) if row is not None else True)

    def cancel_requested(self, claim: Claim) -> bool:
        with transient_db(), self._sessions() as s:
            job = s.get(Job, claim.job_id)
            return job is None or job.cancel_requested or job.claim_token != claim.token

    def set_stage(self, claim: Claim, stage: str, progress: float, timings: dict[str, float] | None = None,
                  substages: dict[str, Any] | None = None) -> bool:
        values: dict[str, Any] = {"stage": stage, "progress": round(min(max(progress, 0.0), 100.0), 2),
                                  "updated_at": utcnow()}
        if timings is not None:
            values["stage_timings"] = dict(timings)
        if substages is not None:
            values["substages"] = substages
        return self._exec(self._owned(claim).values(**values))

    def finish(
        self, claim: Claim, status: JobStatus, *, error: JobError | None = None,
        artifacts: dict[str, Any] | None = None, summary: dict[str, Any] | None = None,
        timings: dict[str, float] | None = None, substages: dict[str, Any] | None = None,
    ) -> bool:
        """Terminal state, set last (after every artifact is uploaded). False if the claim was lost."""
        now = utcnow()
        values: dict[str, Any] = {
            "status": status.value, "finished_at": now, "updated_at": now, "claim_token": None,
            "progress": 100.0 if status is JobStatus.SUCCEEDED else Job.progress,
            "webhook_state": _webhook_state_for(Job.callback_url), "webhook_next_at": now,
        }
        if error is not None:
            values |= {"error_code": error.code, "error_detail": error.detail[:2000], "error_field": error.field}
        elif status is JobStatus.SUCCEEDED:  # forget the transient error of an earlier, retried attempt
            values |= {"error_code": None, "error_detail": None, "error_field": None}
        if artifacts is not None:
            values["artifacts"] = artifacts
        if summary is not None:
            values["summary"] = summary
        if timings is not None:
            values["stage_timings"] = timings
        if substages is not None:
            values["substages"] = substages
        return self._exec(self._owned(claim).values(**values))

    def release(self, claim: Claim, run_after: datetime, error: JobError) -> bool:
        """Give a job back to the queue after a transient failure (retried after ``run_after``)."""
        now = utcnow()
        return self._exec(self._owned(claim).values(
            status=JobStatus.QUEUED.value, claim_token=None, run_after=run_after, updated_at=now, enqueued_at=now,
            error_code=error.code, error_detail=error.detail[:2000], error_field=error.field))

    # ------------------------------------------------------------------ the reconciler's side
    def stale_running(self, stale_before: datetime, limit: int = 500) -> list[Job]:
        q = (select(Job).where(Job.status == JobStatus.RUNNING.value, Job.heartbeat_at < stale_before)
             .order_by(Job.heartbeat_at).limit(limit))
        with transient_db(), self._sessions() as s:
            return list(s.scalars(q))

    def recover_stale(self, job: Job, *, fail: JobError | None) -> bool:
        """A running job whose worker vanished: back to queued, or failed/cancelled. Guarded on the token."""
        now = utcnow()
        q = update(Job).where(Job.id == job.id, Job.status == JobStatus.RUNNING.value,
                              Job.claim_token == job.claim_token, Job.heartbeat_at == job.heartbeat_at)
        if job.cancel_requested:
            values: dict[str, Any] = {"status": JobStatus.CANCELLED.value, "error_code": ErrorCode.CANCELLED.value,
                                      "error_detail": "cancelled by the client"}
        elif fail is not None:
            values = {"status": JobStatus.FAILED.value, "error_code": fail.code, "error_detail": fail.detail,
                      "error_field": fail.field}
        else:
            return self._exec(q.values(status=JobStatus.QUEUED.value, claim_token=None, updated_at=now,
                                       enqueued_at=None, run_after=None))
        values |= {"finished_at": now, "updated_at": now, "claim_token": None,
                   "webhook_state": _webhook_state_for(Job.callback_url), "webhook_next_at": now}
        return self._exec(q.values(**values))

    def statuses(self, job_ids: Collection[str]) -> dict[str, str]:
        """Status of each of ``job_ids`` that has a row, in one query (an id without a row is absent)."""
        if not job_ids:
            return {}
        with transient_db(), self._sessions() as s:
            rows = s.execute(select(Job.id, Job.status).where(Job.id.in_(list(job_ids)))).all()
        return {str(job_id): str(status) for job_id, status in rows}

    def last_substages(self, profile: str) -> dict[str, Any] | None:
        """The sub-stage snapshot of the most recently finished successful job of ``profile`` (ETA seed)."""
        q = (select(Job.substages).where(Job.status == JobStatus.SUCCEEDED.value, Job.profile == profile,
                                         Job.substages.is_not(None))
             .order_by(Job.finished_at.desc()).limit(1))
        with transient_db(), self._sessions() as s:
            found = s.scalars(q).first()
        return dict(found) if isinstance(found, dict) else None

    # ------------------------------------------------------------------ webhooks (outbox)
    def webhooks_due(self, now: datetime, limit: int = 50) -> list[Job]:
        q = (select(Job).where(Job.webhook_state == "pending", Job.webhook_next_at <= now)
             .order_by(Job.webhook_next_at).limit(limit))
        with transient_db(), self._sessions() as s:
            return list(s.scalars(q))

    def webhook_result(self, job: Job, *, delivered: bool, next_at: datetime | None, error: str | None = None) -> bool:
        """Record one delivery try (guarded on the attempt count seen, so two deliverers don't double count);
        ``error``: why it failed (kept as the last error; a delivery clears it)."""
        state = "delivered" if delivered else ("pending" if next_at is not None else "failed")
        q = (update(Job).where(Job.id == job.id, Job.webhook_state == "pending",
                               Job.webhook_attempts == job.webhook_attempts)
             .values(webhook_state=state, webhook_attempts=job.webhook_attempts + 1, webhook_next_at=next_at,
                     webhook_last_error=None if delivered else (error or "not delivered")[:200]))
        return self._exec(q)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _owned(claim: Claim) -> Any:
        return update(Job).where(Job.id == claim.job_id, Job.claim_token == claim.token,
                                 Job.status == JobStatus.RUNNING.value)

    def _exec(self, stmt: Any) -> bool:
        with transient_db(), self._sessions.begin() as s:
            return bool(s.execute(stmt).rowcount == 1)  # type: ignore[attr-defined]


def _webhook_state_for(callback_url: Any) -> Any:
    """SQL expression: 'pending' when the job has a callback URL, else NULL."""
    return case((callback_url.is_not(None), "pending"), else_=None)
