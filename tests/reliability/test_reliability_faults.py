"""Faults under the distributed stack: API + one prefork `echo4d worker` subprocess + PostgreSQL + Redis + an
S3 API server (moto, driven by the real minio client). Each test submits jobs, injects a fault, then checks
that every job ended succeeded or failed with a code, artifacts exactly once, and the job table consistent.

- kill -9 of the worker process mid-reconstruction (no reconciler running): the message comes back
  (acks_late + reject_on_worker_lost), it is claimed again once the dead claim's heartbeat is stale, and the
  job succeeds once;
- a study that kills its worker on every attempt (the OOM killer's SIGKILL): failed with ``worker_lost``
  after ``max_attempts`` claims, never claimed again;
- the object store unreachable for a while (S3 server stopped, started again on the same port): given back,
  retried with backoff, succeeds once; submissions meanwhile get 503 and leave nothing behind.

The longer faults (Redis and PostgreSQL restarts, a store that stays down, the API killed mid-upload) are in
``long_faults.py``, run by hand: ``.venv/bin/pytest tests/reliability/long_faults.py``.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
from reliability_kit import (
    assert_jobs_consistent,
    job_row,
    orphan_inputs,
    pid_of_worker_id,
    settings_from_env,
    wait_terminal,
    wait_until,
)
from service_testkit import study_zip_bytes

pytestmark = [pytest.mark.slow, pytest.mark.services]


def _submit(api: Any, seed: int, **data: str) -> str:
    r = api.post_study(study_zip_bytes(views=("A4C", "A2C"), n_frames=8, seed=seed),
                       data={"profile": "smoke", **data}, headers={"Idempotency-Key": f"rel-{seed}-{time.time()}"})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def test_kill_9_mid_reconstruction_is_redelivered_and_completes_once(api_factory, stack_env, stack_worker):
    """No reconciler runs here: the broker's redelivery alone (acks_late + reject_on_worker_lost) finishes it."""
    stack_api = api_factory(settings_from_env(stack_env, reconcile_interval_s=0))
    worker = stack_worker
    services = stack_api.services
    job_id = _submit(stack_api, 101)

    def in_reconstruct() -> Any:
        job = job_row(services, job_id)
        return job if job.status == "running" and job.stage == "reconstruct" else None

    running = wait_until(in_reconstruct, 120, 0.05, "job in its reconstruct stage")
    victim = pid_of_worker_id(running.worker_id)
    assert victim is not None and victim != worker.pid  # the prefork child that runs the task
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()

    job = wait_terminal(services, [job_id], 150)[job_id]
    assert job.status == "succeeded", (job.status, job.error_code, job.error_detail)
    assert job.attempts >= 2  # the killed attempt was counted
    assert pid_of_worker_id(job.worker_id) != victim
    assert assert_jobs_consistent(services, [job_id]) == {"succeeded": 1}
    assert worker.alive()
    log = worker.text()
    assert "WorkerLostError" in log or "SIGKILL" in log  # the pool saw its child die and rejected the message
    print(f"FIGURE kill-9: 1 job, killed in reconstruct, succeeded {time.monotonic() - killed_at:.1f} s later, "
          f"attempts={job.attempts}, artifacts={len(job.artifacts)} (each once)")


def test_a_study_that_kills_its_worker_every_time_fails_after_max_attempts(api_factory, stack_env, stack_worker):
    """Simulated OOM kill: SIGKILL the process running the job at each attempt (the OOM killer's signal).
    The reconciler runs here (every second): whichever of it and the redelivered message claims first, the
    attempts are counted in the job table and the job is failed once they are used up."""
    stack_api = api_factory(settings_from_env(stack_env, job_max_attempts=2))
    worker = stack_worker
    services = stack_api.services
    job_id = _submit(stack_api, 202)
    max_attempts = job_row(services, job_id).max_attempts
    killed: list[int] = []

    def kill_when_running() -> bool:
        job = job_row(services, job_id)
        if job.status in ("failed", "succeeded", "cancelled"):
            return True
        pid = pid_of_worker_id(job.worker_id)
        if job.status == "running" and pid is not None and pid not in killed:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        return False

    started = time.monotonic()
    wait_until(kill_when_running, 180, 0.05, "job terminal")
    job = job_row(services, job_id)
    print(f"FIGURE oom-loop: {len(killed)} SIGKILLs, failed {job.error_code} after {time.monotonic() - started:.1f} s, "
          f"attempts={job.attempts}/{job.max_attempts}")
    assert job.status == "failed" and job.error_code == "worker_lost", (job.status, job.error_code)
    assert len(killed) == max_attempts and job.attempts in (max_attempts, max_attempts + 1)
    assert assert_jobs_consistent(services, [job_id]) == {"failed": 1}
    attempts = job.attempts
    time.sleep(4)  # longer than the stale-heartbeat window: nothing claims it again
    assert job_row(services, job_id).attempts == attempts and job_row(services, job_id).status == "failed"
    assert worker.alive()


def _good(seed: int) -> bytes:
    return study_zip_bytes(views=("A4C", "A2C"), n_frames=8, seed=seed)


def _submit_body(api: Any, body: bytes, key: str) -> str:
    r = api.post_study(body, data={"profile": "smoke"}, headers={"Idempotency-Key": key})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _stop_when(services: Any, job_id: str, stage: str) -> None:
    wait_until(lambda: (lambda j: j.status == "running" and j.stage == stage)(job_row(services, job_id)), 120, 0.05,
               f"job in stage {stage}")


def test_store_outage_is_retried_with_backoff_then_the_job_succeeds(stack_api, stack_worker,
                                                                    moto_control):
    services = stack_api.services
    job_id = _submit_body(stack_api, _good(311), "store-blip")
    _stop_when(services, job_id, "reconstruct")
    moto_control.stop()
    down_at = time.monotonic()
    try:
        blocked = stack_api.post_study(_good(312), headers={"Idempotency-Key": "store-down-submit"})
        assert blocked.status_code == 503 and blocked.json()["code"] == "store_unavailable"
        assert "retry-after" in blocked.headers
        # the upload fails, the job goes back to the table with the transient code, and waits for its retry
        wait_until(lambda: job_row(services, job_id).error_code == "store_unavailable", 90, 0.05,
                   "job given back with store_unavailable")
        assert job_row(services, job_id).status in ("queued", "running")
    finally:
        moto_control.start()
        outage = time.monotonic() - down_at
    job = wait_terminal(services, [job_id], 120)[job_id]
    print(f"FIGURE store-blip: store down {outage:.1f} s, job succeeded {time.monotonic() - down_at:.1f} s after the "
          f"outage began, attempts={job.attempts}; submission during the outage: 503")
    assert job.status == "succeeded" and job.attempts >= 2, (job.status, job.error_code, job.attempts)
    assert assert_jobs_consistent(services, [job_id]) == {"succeeded": 1}
    # the refused submission left nothing behind: no job, no inputs
    assert services.jobs.find_by_idempotency(job.tenant_id, "store-down-submit") is None
    assert orphan_inputs(services) == []
