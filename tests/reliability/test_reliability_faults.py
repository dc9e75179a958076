"""Faults under the distributed stack: API + one prefork `echo4d worker` subprocess + PostgreSQL + Redis + an
S3 API server (moto, driven by the real minio client). Each test submits jobs, injects a fault, then checks
that every job ended succeeded or failed with a code, artifacts exactly once, and the job table consistent.

- kill -9 of the worker process mid-reconstruction (no reconciler running): the message comes back
  (acks_late + reject_on_worker_lost), it is claimed again once the dead claim's heartbeat is stale, and the
  job succeeds once;
- a study that kills its worker on every attempt (the OOM killer's SIGKILL): failed with ``worker_lost``
  after ``max_attempts`` claims, never claimed again;
- the object store unreachable for a while (S3 server stopped, started again on the same port): given back,
  retried with backoff, succeeds once; submissions meanwhile get 503 and leave nothing behind;
- outputs left behind because the store was down when a failed job's cleanup ran (S3 server stopped, or the
  folder store's filesystem remounted read-only): the reconciler's sweep deletes them on its first pass after
  the store is back, and a pass while it is still down logs and goes on;
- a solo worker past its hard time limit (its job hangs on a store that accepts connections and never
  answers): the watchdog ends the process with ``os._exit(70)``, the heartbeat goes stale, and the reconciler
  counts the attempt and fails the job with ``worker_lost`` (its last attempt).

The longer faults (Redis and PostgreSQL restarts, a store that stays down, the API killed mid-upload) are in
``long_faults.py``, run by hand: ``.venv/bin/pytest tests/reliability/long_faults.py``.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import signal
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from reliability_kit import (
    BlackHole,
    WorkerProcess,
    assert_jobs_consistent,
    good_study,
    job_row,
    orphan_inputs,
    pid_of_worker_id,
    remount,
    settings_from_env,
    submit_body,
    wait_terminal,
    wait_until,
)
from service_testkit import embedded_settings

from jobcore.db.models import utcnow
from jobcore.reconciler import Reconciler, ReconcilerThread
from jobcore.storage import output_key

pytestmark = [pytest.mark.slow, pytest.mark.services]


def _submit(api: Any, seed: int, **data: str) -> str:
    r = api.post_study(good_study(seed),
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


def _stop_when(services: Any, job_id: str, stage: str) -> None:
    wait_until(lambda: (lambda j: j.status == "running" and j.stage == stage)(job_row(services, job_id)), 120, 0.05,
               f"job in stage {stage}")


def test_store_outage_is_retried_with_backoff_then_the_job_succeeds(stack_api, stack_worker,
                                                                    moto_control):
    services = stack_api.services
    job_id = submit_body(stack_api, good_study(311), "store-blip")
    _stop_when(services, job_id, "reconstruct")
    moto_control.stop()
    down_at = time.monotonic()
    try:
        blocked = stack_api.post_study(good_study(312), headers={"Idempotency-Key": "store-down-submit"})
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


@pytest.mark.parametrize("backend", ["minio", "local"])
def test_outputs_left_by_a_store_outage_are_swept_once_the_store_is_back(
        request: pytest.FixtureRequest, backend: str, api_factory, moto_control, tmp_path: Path,
        caplog: pytest.LogCaptureFixture):
    """A job uploaded part of its outputs, then the store went down and stayed down until the job was failed
    on its last attempt: the failed job's cleanup (here the reconciler's, for a worker that stopped
    heartbeating; the worker's own ``_finish`` has the same try-and-log) cannot reach the store. The sweep,
    on the first reconciler pass after the store is back, deletes what was left; while the store is still
    down, the pass logs and finishes its other work."""
    caplog.set_level(logging.INFO)
    values: dict[str, Any] = {"job_max_attempts": 1}  # SQLite of its own: this reconciler sees only this job
    if backend == "minio":
        if not moto_control.running:
            moto_control.start()
        values |= {"store_backend": "minio", "s3_endpoint": moto_control.endpoint, "s3_access_key": "testing",
                   "s3_secret_key": "testing", "s3_bucket": f"echo4d-sweep-{secrets.token_hex(3)}"}

        def down() -> None:
            moto_control.stop()

        def up() -> None:
            moto_control.start()
    else:
        mount: Path = request.getfixturevalue("tiny_fs")
        values["store_dir"] = mount / "objects"

        def down() -> None:
            remount(mount, read_only=True)

        def up() -> None:
            remount(mount, read_only=False)

    api = api_factory(embedded_settings(tmp_path, **values))
    services = api.services
    job_id = _submit(api, 501)
    t0 = utcnow() - timedelta(minutes=5)  # its worker's last heartbeat: long stale
    assert services.jobs.claim(job_id, "worker-that-was-uploading", t0, t0 - timedelta(seconds=60)) is not None
    for name in ("mesh.glb", "report.json"):  # uploaded before the outage
        services.store.put_stream(output_key(job_id, name), io.BytesIO(b"partial"), length=7)
    reconciler = Reconciler(services.settings, services.jobs, services.queue, services.store, services.metrics)

    down()
    down_at = time.monotonic()
    try:
        while_down = reconciler.run_once()  # must not raise
    finally:
        up()
    outage = time.monotonic() - down_at
    job = job_row(services, job_id)
    assert (job.status, job.error_code, job.attempts) == ("failed", "worker_lost", 1)
    assert while_down.failed_stale == 1 and while_down.orphan_outputs == 0
    assert "output_cleanup_failed" in caplog.text and "orphan_sweep_interrupted" in caplog.text
    left = services.store.list_keys(f"outputs/{job_id}/")
    assert len(left) == 2  # the state this sweep exists for: a failed job with outputs in the store

    back_at = time.monotonic()
    back = reconciler.run_once()  # the interrupted sweep is due again at once
    swept_s = time.monotonic() - back_at
    assert back.orphan_outputs == 1 and back.orphan_inputs == 0
    assert assert_jobs_consistent(services, [job_id]) == {"failed": 1}
    assert services.store.list_keys(f"inputs/{job_id}/")  # the job has a row: its inputs stay
    assert reconciler.sweep_orphans().orphan_outputs == 0  # idempotent
    print(f"FIGURE orphan-sweep[{backend}]: store down {outage:.1f} s during one pass (job failed worker_lost, "
          f"cleanup and sweep logged, {len(left)} outputs left); next pass: orphan_outputs={back.orphan_outputs}, "
          f"0 outputs left, in {swept_s:.2f} s")


def test_a_solo_worker_past_its_hard_time_limit_is_ended_and_the_attempt_counted(
        api_factory, stack_env_base: dict[str, str], moto_control, tmp_path: Path):
    """The watchdog path (``worker/worker_main.py``): a solo pool cannot enforce Celery's time limits, so a timer
    armed at task start ends the process with ``os._exit(70)`` past the hard limit. The job hangs in ``fetch``
    on a store that accepts connections and never answers, so the cooperative soft limit (5 s) never gets a
    chance; the hard limit is 10 s (the smallest Settings allow). The heartbeat then goes stale (3 s) and the
    reconciler counts the attempt: with one attempt allowed, the job ends ``failed``/``worker_lost``.

    Order matters: the worker builds its clients on its first task (the store's ``ensure_ready`` included),
    so it first runs a task for an unknown job id with the store up; the job is submitted on a queue no
    worker reads and published to the solo worker's queue only once the store hangs."""
    from jobcore.celery_app import create_celery
    from jobcore.queue import CeleryQueue

    if not moto_control.running:
        moto_control.start()
    base_queue = stack_env_base["ECHO4D_QUEUE_NAME"]
    env = {**stack_env_base, "ECHO4D_QUEUE_NAME": f"{base_queue}_solo", "ECHO4D_JOB_SOFT_TIME_LIMIT_S": "5",
           "ECHO4D_JOB_HARD_TIME_LIMIT_S": "10", "ECHO4D_HEARTBEAT_STALE_S": "3", "ECHO4D_JOB_MAX_ATTEMPTS": "1"}
    settings = settings_from_env(env, reconcile_interval_s=0)  # the reconciler is started below, store back
    api = api_factory(settings_from_env(env, reconcile_interval_s=0, queue_name=f"{base_queue}_held"))
    services = api.services
    solo_queue = CeleryQueue(create_celery(settings), settings.queue_name)
    worker = WorkerProcess(env, tmp_path / "solo-worker.log", pool="solo")
    try:
        job_id = _submit(api, 601)  # inputs stored; its message waits on a queue nobody reads
        solo_queue.enqueue(str(uuid.uuid4()))  # warm-up: the worker builds its clients while the store is up
        wait_until(lambda: "job_not_claimable" in worker.text(), 60, 0.1, "solo worker ready")
        moto_control.stop()
        with BlackHole(moto_control.port):
            started = time.monotonic()
            solo_queue.enqueue(job_id)
            wait_until(lambda: job_row(services, job_id).status == "running", 30, 0.05, "job claimed")
            claimed_at = time.monotonic()
            rc = worker.proc.wait(timeout=40)  # TimeoutExpired here: the watchdog did not end the process
            exited_at = time.monotonic()
            at_exit = job_row(services, job_id)
    finally:
        worker.stop()
        if not moto_control.running:
            moto_control.start()
        solo_queue.close()
    assert rc == 70, worker.text()[-2000:]
    assert "hard_time_limit_exceeded" in worker.text()
    # it ran (and heartbeated) until the watchdog: still running in fetch, nothing reclaimed it before
    assert (at_exit.status, at_exit.stage, at_exit.attempts) == ("running", "fetch", 1)

    thread = ReconcilerThread(Reconciler(settings, services.jobs, services.queue, services.store, services.metrics),
                              1.0)
    thread.start()
    try:
        job = wait_terminal(services, [job_id], 30)[job_id]
    finally:
        thread.stop()
        thread.join(timeout=10)
    ended_at = time.monotonic()
    assert (job.status, job.error_code, job.attempts) == ("failed", "worker_lost", 1), job.error_detail
    assert "hard time limit" in (job.error_detail or "")
    assert assert_jobs_consistent(services, [job_id]) == {"failed": 1}
    print(f"FIGURE hard-limit: claimed {claimed_at - started:.1f} s after publishing, worker exited rc={rc} "
          f"{exited_at - claimed_at:.1f} s after the claim (limit 10 s from task start), job failed worker_lost "
          f"{ended_at - exited_at:.1f} s after the exit (stale 3 s, reconciler every 1 s), attempts 1/1; "
          f"{ended_at - started:.1f} s from publishing to failed")
