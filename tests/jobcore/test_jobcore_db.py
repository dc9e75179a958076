"""The job table on SQLite and PostgreSQL: migrations, atomic claims, fencing tokens, cancel, pagination."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from uuid import uuid4

import pytest
from sqlalchemy import inspect

from jobcore.db.engine import make_engine, make_sessionmaker, run_migrations, transient_db
from jobcore.db.jobs import JobError, JobRepository
from jobcore.db.models import Job, JobStatus, utcnow
from jobcore.db.tenants import TenantRepository
from jobcore.errors import TransientError


@pytest.fixture()
def repos(db_url: str) -> Iterator[tuple[JobRepository, TenantRepository, str]]:
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    tenants = TenantRepository(sessions)
    tenant = tenants.get_or_create("t1")
    yield JobRepository(sessions), tenants, tenant.id
    engine.dispose()


def new_job(tenant_id: str, *, key: str | None = None, callback: str | None = None, **kw: object) -> Job:
    now = utcnow()
    values: dict[str, object] = dict(
        id=str(uuid4()), tenant_id=tenant_id, status="queued", progress=0.0, profile="smoke", input_kind="bundle",
        input_keys=["inputs/x/study.zip"], input_sha256="h", input_bytes=1, idempotency_key=key, attempts=0,
        max_attempts=2, cancel_requested=False, artifacts={}, summary={}, stage_timings={}, callback_url=callback,
        webhook_attempts=0, created_at=now, updated_at=now)
    values.update(kw)
    return Job(**values)


def test_migrations_are_idempotent_and_create_the_tables(db_url: str):
    engine = make_engine(db_url)
    run_migrations(engine)  # second time: no-op
    assert {"jobs", "tenants", "api_keys", "alembic_version"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_claim_is_atomic_under_concurrency(repos):
    jobs, _, tenant = repos
    job, _ = jobs.create(new_job(tenant))
    now = utcnow()
    results = []
    barrier = threading.Barrier(6)

    def claim(i: int) -> None:
        barrier.wait()
        results.append(jobs.claim(job.id, f"w{i}", now, now - timedelta(seconds=60)))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [c for c in results if c is not None]
    assert len(winners) == 1
    row = jobs.get(job.id)
    assert row is not None and row.status == "running" and row.attempts == 1 and row.claim_token == winners[0].token


def test_stale_running_job_can_be_reclaimed_and_old_claim_is_fenced(repos):
    jobs, _, tenant = repos
    job, _ = jobs.create(new_job(tenant))
    t0 = utcnow()
    first = jobs.claim(job.id, "w1", t0, t0 - timedelta(seconds=60))
    assert first is not None
    assert jobs.claim(job.id, "w2", t0, t0 - timedelta(seconds=60)) is None  # heartbeat fresh
    later = t0 + timedelta(seconds=120)
    second = jobs.claim(job.id, "w2", later, later - timedelta(seconds=60))
    assert second is not None and second.attempts == 2
    assert jobs.heartbeat(first, later) == (False, True)  # the old worker learns it lost the job
    assert not jobs.set_stage(first, "reconstruct", 50.0)
    assert not jobs.finish(first, JobStatus.SUCCEEDED, artifacts={"x": {}})
    assert jobs.finish(second, JobStatus.FAILED, error=JobError("invalid_study", "bad"))
    row = jobs.get(job.id)
    assert row is not None and (row.status, row.error_code, row.artifacts) == ("failed", "invalid_study", {})


def test_cancel_queued_vs_running(repos):
    jobs, _, tenant = repos
    queued, _ = jobs.create(new_job(tenant))
    running, _ = jobs.create(new_job(tenant))
    now = utcnow()
    claim = jobs.claim(running.id, "w", now, now - timedelta(seconds=60))
    assert claim is not None
    assert jobs.cancel(queued.id, tenant).status == "cancelled"  # type: ignore[union-attr]
    row = jobs.cancel(running.id, tenant)
    assert row is not None and row.status == "running" and row.cancel_requested
    assert jobs.heartbeat(claim, utcnow()) == (True, True)
    assert jobs.cancel(running.id, "other-tenant") is None


def test_release_puts_job_back_with_a_delay(repos):
    jobs, _, tenant = repos
    job, _ = jobs.create(new_job(tenant))
    now = utcnow()
    claim = jobs.claim(job.id, "w", now, now - timedelta(seconds=60))
    assert claim is not None
    assert jobs.release(claim, now + timedelta(seconds=30), JobError("store_unavailable", "down"))
    assert jobs.next_claimable(now) is None
    assert jobs.next_claimable(now + timedelta(seconds=31)) == job.id
    assert jobs.get(job.id).status == "queued"  # type: ignore[union-attr]


def test_idempotency_key_is_unique_per_tenant(repos):
    jobs, tenants, tenant = repos
    a, created_a = jobs.create(new_job(tenant, key="k1"))
    b, created_b = jobs.create(new_job(tenant, key="k1"))
    assert created_a and not created_b and a.id == b.id
    other = tenants.get_or_create("t2").id
    c, created_c = jobs.create(new_job(other, key="k1"))
    assert created_c and c.id != a.id


def test_stale_and_lost_queries_and_recovery(repos):
    jobs, _, tenant = repos
    job, _ = jobs.create(new_job(tenant))
    now = utcnow()
    assert [j.id for j in jobs.queued_older_than(now)] == [job.id]  # never enqueued
    assert jobs.mark_enqueued(job.id, None, guard=True)
    assert not jobs.mark_enqueued(job.id, None, guard=True)  # a second reconciler loses the guard
    claim = jobs.claim(job.id, "w", now, now - timedelta(seconds=60))
    assert claim is not None
    later = now + timedelta(seconds=300)
    stale = jobs.stale_running(later - timedelta(seconds=60))
    assert [j.id for j in stale] == [job.id]
    assert jobs.recover_stale(stale[0], fail=None)
    assert not jobs.recover_stale(stale[0], fail=None)  # guarded: only once
    assert jobs.get(job.id).status == "queued"  # type: ignore[union-attr]
    assert jobs.counts_by_status()["queued"] == 1


def test_webhook_outbox(repos):
    jobs, _, tenant = repos
    job, _ = jobs.create(new_job(tenant, callback="https://example.org/h"))
    plain, _ = jobs.create(new_job(tenant))
    now = utcnow()
    for j in (job, plain):
        claim = jobs.claim(j.id, "w", now, now - timedelta(seconds=60))
        assert claim is not None and jobs.finish(claim, JobStatus.SUCCEEDED, artifacts={})
    due = jobs.webhooks_due(utcnow() + timedelta(seconds=1))
    assert [j.id for j in due] == [job.id]
    assert jobs.webhook_result(due[0], delivered=False, next_at=utcnow() + timedelta(seconds=60))
    assert not jobs.webhook_result(due[0], delivered=True, next_at=None)  # stale attempt count
    assert jobs.webhooks_due(utcnow() + timedelta(seconds=1)) == []
    assert jobs.get(plain.id).webhook_state is None  # type: ignore[union-attr]


def test_datetimes_come_back_aware_utc(repos):
    jobs, _, tenant = repos
    job, _ = jobs.create(new_job(tenant))
    row = jobs.get(job.id)
    assert row is not None and row.created_at.utcoffset() == timedelta(0)


def test_unreachable_database_is_transient():
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=1")
    with pytest.raises(TransientError) as err, transient_db(), engine.connect():
        pass
    assert err.value.code.value == "database_unavailable"
