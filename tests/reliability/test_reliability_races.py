"""Cancellation races and duplicate deliveries, on PostgreSQL (real row locking) with the worker's ``run_job``.

Documented behaviour of ``DELETE /v1/jobs/{id}``: queued → 200, the job never runs; running → 202, it stops
at the next stage boundary or progress report (if none is left, it ends as it would have); already
cancelled → 200, a no-op; succeeded or failed → 409, the job is unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from reliability_kit import assert_jobs_consistent, job_row, wait_until
from service_testkit import ApiHarness, broken_study_zip_bytes, embedded_settings, study_zip_bytes, worker_context

from jobcore.db.models import utcnow
from worker.runner import Outcome, run_job

pytestmark = pytest.mark.services


@pytest.fixture()
def pg_api(api_factory: Callable[..., ApiHarness], tmp_data_dir: Path, pg_url: str, smoke_prior: Path,
           one_torch_thread: None) -> ApiHarness:
    return api_factory(embedded_settings(tmp_data_dir, database_url=pg_url, prior_checkpoint=smoke_prior,
                                         device="cpu", heartbeat_interval_s=0.3, heartbeat_stale_s=5))


def _post(api: ApiHarness, body: bytes, profile: str = "smoke") -> str:
    r = api.post_study(body, data={"profile": profile})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _cancel(api: ApiHarness, job_id: str) -> Any:
    return api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.auth())


def test_cancel_while_queued_never_runs(pg_api: ApiHarness):
    job_id = _post(pg_api, study_zip_bytes(seed=21))
    r = _cancel(pg_api, job_id)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert run_job(worker_context(pg_api.services), job_id) is Outcome.SKIPPED  # its message arrives later
    job = job_row(pg_api.services, job_id)
    assert (job.status, job.attempts, job.started_at, job.stage) == ("cancelled", 0, None, None)
    assert assert_jobs_consistent(pg_api.services, [job_id]) == {"cancelled": 1}


@pytest.mark.slow
def test_cancel_while_running_stops_at_the_next_boundary(pg_api: ApiHarness):
    job_id = _post(pg_api, study_zip_bytes(views=("A4C", "A2C"), n_frames=8, seed=22), profile="default")
    outcome: list[Outcome] = []
    runner = threading.Thread(target=lambda: outcome.append(run_job(worker_context(pg_api.services), job_id)))
    runner.start()
    wait_until(lambda: job_row(pg_api.services, job_id).stage == "reconstruct", 60, 0.05, "reconstruct stage")
    time.sleep(0.5)
    r = _cancel(pg_api, job_id)
    cancelled_at = time.monotonic()
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    runner.join(timeout=120)
    latency = time.monotonic() - cancelled_at
    assert outcome == [Outcome.CANCELLED]
    job = pg_api.client.get(f"/v1/jobs/{job_id}", headers=pg_api.auth()).json()
    assert job["status"] == "cancelled" and job["stage"] == "reconstruct" and job["artifacts"] == {}
    assert latency < 15, latency  # the default profile would need far longer to finish
    assert assert_jobs_consistent(pg_api.services, [job_id]) == {"cancelled": 1}
    print(f"FIGURE cancel-running: stopped {latency:.1f} s after DELETE (202)")


@pytest.mark.slow
def test_cancel_after_the_end_is_409_or_a_no_op(pg_api: ApiHarness):
    ok = _post(pg_api, study_zip_bytes(views=("A4C", "A2C"), n_frames=8, seed=23))
    bad = _post(pg_api, broken_study_zip_bytes())
    gone = _post(pg_api, study_zip_bytes(seed=24))
    ctx = worker_context(pg_api.services)
    assert run_job(ctx, ok) is Outcome.SUCCEEDED
    assert run_job(ctx, bad) is Outcome.FAILED
    assert _cancel(pg_api, gone).status_code == 200
    before = {j: pg_api.client.get(f"/v1/jobs/{j}", headers=pg_api.auth()).json() for j in (ok, bad, gone)}
    for j in (ok, bad):
        r = _cancel(pg_api, j)
        assert r.status_code == 409 and r.json()["code"] == "conflict"
    again = _cancel(pg_api, gone)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    after = {j: pg_api.client.get(f"/v1/jobs/{j}", headers=pg_api.auth()).json() for j in (ok, bad, gone)}
    for j in (ok, bad, gone):
        assert {k: v for k, v in after[j].items() if k != "cancel_requested"} == \
            {k: v for k, v in before[j].items() if k != "cancel_requested"}
    assert pg_api.client.get(f"/v1/jobs/{ok}/artifacts/mesh.glb", headers=pg_api.auth()).status_code == 200
    assert assert_jobs_consistent(pg_api.services, [ok, bad, gone]) == {"succeeded": 1, "failed": 1, "cancelled": 1}


def test_cancel_racing_the_claim_always_ends_consistently(pg_api: ApiHarness):
    """DELETE and a worker's claim released at the same instant, 12 times. Eight are timed races (the DELETE
    0-100 ms after the claim is let go); in two the DELETE is answered before the claim, in two after it, so that
    both orders are covered however loaded the machine is (timing alone covered only one on a busy 2-core box)."""
    ids = [_post(pg_api, broken_study_zip_bytes()) for _ in range(12)]
    answers: dict[str, int] = {}
    outcomes: dict[str, Outcome] = {}

    def race(job_id: str, delay_s: float, order: str | None) -> None:
        gate = threading.Barrier(2)
        ctx = worker_context(pg_api.services, f"racer-{job_id[:6]}")  # built before the gate: only the claim races
        cancelled = threading.Event()

        def cancel() -> None:
            gate.wait()
            if order == "claim_first":
                wait_until(lambda: job_row(pg_api.services, job_id).status != "queued", 30, 0.005, "the claim")
            time.sleep(delay_s)
            answers[job_id] = _cancel(pg_api, job_id).status_code
            cancelled.set()

        def work() -> None:
            gate.wait()
            if order == "cancel_first":
                assert cancelled.wait(30)
            outcomes[job_id] = run_job(ctx, job_id)

        threads = [threading.Thread(target=cancel), threading.Thread(target=work)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)

    timed = [(None, 0.02 * k) for k in (0, 1, 2, 3, 4, 5, 0, 2)]  # from "before the claim" to "while it runs"
    ordered = [("cancel_first", 0.0), ("claim_first", 0.0)] * 2
    for job_id, (order, delay_s) in zip(ids, timed + ordered, strict=True):
        race(job_id, delay_s, order)
    for job_id in ids:
        job = job_row(pg_api.services, job_id)
        answer, outcome = answers[job_id], outcomes[job_id]
        if answer == 200:  # cancelled while queued: the claim found nothing to do
            assert (job.status, job.attempts, outcome) == ("cancelled", 0, Outcome.SKIPPED)
        elif answer == 202:  # cancelled while running: stopped at a boundary, or it had already failed
            assert job.status in ("cancelled", "failed") and job.attempts == 1
            assert outcome is Outcome(job.status)
        else:  # the job had already ended
            assert answer == 409 and job.status == "failed" and outcome is Outcome.FAILED
    assert assert_jobs_consistent(pg_api.services, ids)
    assert len(set(answers.values())) >= 2  # both orders happened (the ordered races make sure of it)
    print(f"FIGURE cancel-race: 12 races, DELETE answers {sorted(answers.values())}, "
          f"outcomes {sorted(o.value for o in outcomes.values())}")


def test_duplicate_messages_run_the_job_once(pg_api: ApiHarness):
    """Five deliveries of one job at once (a redelivery storm): one claim wins, the others do nothing."""
    job_id = _post(pg_api, broken_study_zip_bytes())
    gate = threading.Barrier(5)
    outcomes: list[Outcome] = []

    def deliver(n: int) -> None:
        gate.wait()
        outcomes.append(run_job(worker_context(pg_api.services, f"dup-{n}"), job_id))

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcomes.count(Outcome.FAILED) == 1
    assert set(outcomes) <= {Outcome.FAILED, Outcome.SKIPPED, Outcome.BUSY}
    assert job_row(pg_api.services, job_id).attempts == 1


def test_redelivery_waits_for_a_live_claim_then_takes_over_a_dead_one(pg_api: ApiHarness):
    """What a message given back by task_reject_on_worker_lost meets: BUSY while the holder's heartbeat is
    fresh (the Celery task retries after ``heartbeat_stale_s``), a claim once it is stale."""
    job_id = _post(pg_api, broken_study_zip_bytes())
    jobs = pg_api.services.jobs
    now = utcnow()
    assert jobs.claim(job_id, "host:1", now, now - timedelta(seconds=5)) is not None  # a live holder
    ctx = worker_context(pg_api.services, "host:2")
    assert run_job(ctx, job_id) is Outcome.BUSY
    assert job_row(pg_api.services, job_id).attempts == 1  # nothing counted, nothing changed
    with pg_api.services.sessions.begin() as s:  # the holder died 10 s ago: its heartbeat is stale
        from sqlalchemy import update

        from jobcore.db.models import Job

        s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=now - timedelta(seconds=10)))
    assert run_job(ctx, job_id) is Outcome.FAILED  # claimed (attempt 2), ran, failed on its bad input
    job = job_row(pg_api.services, job_id)
    assert (job.attempts, job.error_code) == (2, "empty_mask")
    # a cancel requested on a dead holder is the reconciler's to finish, not a redelivery's
    other = _post(pg_api, broken_study_zip_bytes())
    assert jobs.claim(other, "host:1", now, now - timedelta(seconds=5)) is not None
    assert _cancel(pg_api, other).status_code == 202
    assert run_job(ctx, other) is Outcome.SKIPPED


def test_the_celery_task_keeps_a_busy_delivery_for_after_the_stale_window(pg_api: ApiHarness):
    """The Celery task turns BUSY into a retry (the message is not dropped) due once the holder's heartbeat
    would be stale, with a bounded number of retries; a finished job's delivery is simply dropped."""
    from jobcore.celery_app import create_celery
    from jobcore.queue import RECONSTRUCT_TASK
    from worker.tasks import WorkerRuntime, register_tasks

    settings = pg_api.services.settings.model_copy(update={"broker_url": "redis://127.0.0.1:6379/15"})
    app = create_celery(settings)
    register_tasks(app, WorkerRuntime(settings))
    task = app.tasks[RECONSTRUCT_TASK]
    asked: list[dict[str, Any]] = []

    class Retried(Exception):
        pass

    def retry(**kwargs: Any) -> Exception:
        asked.append(kwargs)
        return Retried()

    task.retry = retry  # type: ignore[method-assign]
    job_id = _post(pg_api, broken_study_zip_bytes())
    now = utcnow()
    assert pg_api.services.jobs.claim(job_id, "host:1", now, now - timedelta(seconds=5)) is not None
    with pytest.raises(Retried):
        task(job_id)
    assert asked == [{"countdown": settings.heartbeat_stale_s + 1.0, "max_retries": asked[0]["max_retries"]}]
    assert settings.job_hard_time_limit_s / asked[0]["countdown"] < asked[0]["max_retries"] < 1000
    done = _post(pg_api, broken_study_zip_bytes())
    assert task(done) == "failed" and task(done) == "skipped"  # ran once; the duplicate did nothing
    assert len(asked) == 1
