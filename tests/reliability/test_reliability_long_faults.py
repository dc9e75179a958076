"""The long fault tests (part of ``make test`` since issue #15; about a minute):

- Redis restarted without persistence while jobs are queued and one runs: the reconciler re-enqueues what the
  broker lost; every job ends once.
- The object store stays down: the job fails with ``store_unavailable`` after its attempts.
- PostgreSQL restarted (down 3 s) under load: clients see 202/200 or 503 problem+json only (never a 500 or a
  hang), a retry with the same Idempotency-Key gets one job, and every accepted job ends.
- The API process killed (SIGKILL) while uploads are in flight, started again on the same port: clients that
  retry with the same Idempotency-Key get exactly one job each.

The Redis and PostgreSQL restarted here are this module's own (a ``redis-server`` on a free port, a cluster
made with ``initdb`` in a temporary folder): restarting the machine's shared servers would cut off every other
test run using them at the same time (other checkouts, CI jobs on the same host).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability_kit import (
    ROOT,
    LiveServer,
    PrivatePostgres,
    PrivateRedis,
    assert_jobs_consistent,
    good_study,
    idempotency_duplicates,
    job_row,
    settings_from_env,
    submit_body,
    wait_terminal,
    wait_until,
)
from service_testkit import broken_study_zip_bytes, free_port, stop_process

pytestmark = [pytest.mark.slow, pytest.mark.services]


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server/redis-cli are not installed: no private Redis to restart")
    server = PrivateRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    if shutil.which("pg_config") is None:
        pytest.skip("PostgreSQL's server programs (pg_config, initdb, pg_ctl) are not installed")
    server = PrivatePostgres()
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def redis_url(private_redis: PrivateRedis) -> str:
    """This module's stack uses its private Redis (overrides the shared one of conftest.py)."""
    return private_redis.url


@pytest.fixture(scope="module")
def pg_url(private_postgres: PrivatePostgres) -> str:
    """This module's stack uses its private PostgreSQL (overrides the shared one of conftest.py)."""
    return private_postgres.url


@pytest.fixture()
def redis_restarter(private_redis: PrivateRedis) -> Iterator[Callable[[], None]]:
    yield private_redis.restart
    if not private_redis.ping():
        private_redis.start()


@pytest.fixture()
def postgres_restarter(private_postgres: PrivatePostgres) -> Iterator[Callable[..., None]]:
    yield private_postgres.restart
    if not private_postgres.ready():
        private_postgres.start()


def _metric(services: Any, name: str, **labels: str) -> float:
    value = services.metrics.registry.get_sample_value(name, labels)
    return float(value or 0.0)


def test_redis_restart_loses_queued_messages_and_the_reconciler_reenqueues_them(
        stack_api, stack_worker, redis_restarter):
    services = stack_api.services
    worker = stack_worker
    running = submit_body(stack_api, good_study(301), "redis-running")
    wait_until(lambda: job_row(services, running).status == "running", 120, 0.05, "first job running")
    queued = [submit_body(stack_api, good_study(302), "redis-q0")]
    queued += [submit_body(stack_api, broken_study_zip_bytes(), f"redis-q{i}") for i in (1, 2)]
    assert services.queue.pending_job_ids() is not None
    assert set(queued) <= services.queue.pending_job_ids()  # type: ignore[operator]

    redis_restarter()  # nothing survives: the queue list and the unacked hash are gone
    restarted = time.monotonic()
    assert services.queue.depth() == 0
    held_after = services.queue.pending_job_ids() or set()
    assert not set(queued) & held_after

    ids = [running, *queued]
    rows = wait_terminal(services, ids, 180)
    assert assert_jobs_consistent(services, ids) == {"succeeded": 2, "failed": 2}
    assert rows[running].status == "succeeded" and rows[queued[0]].status == "succeeded"
    assert {rows[j].error_code for j in queued[1:]} == {"empty_mask"}
    reenqueued = _metric(services, "echo4d_reconciler_actions_total", action="reenqueued")
    assert reenqueued >= len(queued)
    print(f"FIGURE redis-restart: 4 jobs (1 running, 3 queued), all terminal {time.monotonic() - restarted:.1f} s "
          f"after the restart, reconciler re-enqueued {reenqueued:.0f}, outcomes 2 succeeded / 2 failed (bad input)")
    assert worker.alive()


def _stop_when(services: Any, job_id: str, stage: str) -> None:
    wait_until(lambda: (lambda j: j.status == "running" and j.stage == stage)(job_row(services, job_id)), 120, 0.05,
               f"job in stage {stage}")


def test_store_that_stays_down_fails_the_job_with_a_clear_code(stack_api, stack_worker, moto_control):
    services = stack_api.services
    job_id = submit_body(stack_api, good_study(321), "store-down")
    _stop_when(services, job_id, "reconstruct")
    moto_control.stop()
    down_at = time.monotonic()
    try:
        job = wait_terminal(services, [job_id], 120)[job_id]
        print(f"FIGURE store-down: failed {job.error_code} after {time.monotonic() - down_at:.1f} s, "
              f"attempts={job.attempts}/{job.max_attempts}")
        assert (job.status, job.error_code) == ("failed", "store_unavailable"), (job.status, job.error_code)
        assert job.attempts == job.max_attempts
        body = stack_api.client.get(f"/v1/jobs/{job_id}", headers=stack_api.auth()).json()
        assert body["error"]["code"] == "store_unavailable" and body["error"]["status"] == 500
        assert "unreachable" in body["error"]["detail"]
    finally:
        moto_control.start()
    assert assert_jobs_consistent(services, [job_id]) == {"failed": 1}


def test_postgres_restart_under_load(stack_env, stack_worker, postgres_restarter):
    from service.app import create_app
    from service.auth import create_key
    from service.context import build_services

    settings = settings_from_env(stack_env)
    services = build_services(settings)
    try:
        _, key = create_key(services.tenants, "pg-load", services.pepper)
        _postgres_restart_under_load(services, create_app(settings, services=services), key, stack_env,
                                     stack_worker, postgres_restarter)
    finally:
        services.close()


def _postgres_restart_under_load(services: Any, app: Any, api_key: str, stack_env: dict[str, str],
                                 worker: Any, postgres_restarter: Any) -> None:
    statuses: dict[int, int] = {}
    problems: list[str] = []
    accepted: dict[str, str] = {}
    stop = threading.Event()
    lock = threading.Lock()

    def client(n: int, base: str) -> None:
        headers = {"Authorization": f"Bearer {api_key}"}
        i = 0
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            while not stop.is_set():
                key = f"pg-{n}-{i}"
                body = good_study(400 + 10 * n + i) if i % 4 == 0 else broken_study_zip_bytes()
                for _ in range(60):  # a well-behaved client: retry 503s with the same key
                    try:
                        r = c.post("/v1/studies", files={"file": ("s.zip", body, "application/zip")},
                                   data={"profile": "smoke"}, headers={"Idempotency-Key": key})
                    except httpx.TransportError as exc:
                        with lock:
                            problems.append(f"transport error {type(exc).__name__}")
                        break
                    with lock:
                        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code == 202:
                        with lock:
                            accepted[key] = r.json()["id"]
                        g = c.get(f"/v1/jobs/{r.json()['id']}")
                        with lock:
                            statuses[g.status_code] = statuses.get(g.status_code, 0) + 1
                        break
                    if r.status_code != 503 or r.headers.get("content-type") != "application/problem+json":
                        with lock:
                            problems.append(f"{r.status_code} {r.text[:200]}")
                        break
                    time.sleep(min(float(r.headers.get("retry-after", "1")), 1.0))
                i += 1
                time.sleep(0.2)

    with LiveServer(app) as live:
        threads = [threading.Thread(target=client, args=(n, live.url), daemon=True) for n in range(2)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(accepted) >= 2, 60, 0.1, "load running")
            postgres_restarter(down_s=3.0)
            before = len(accepted)
            wait_until(lambda: len(accepted) >= before + 2, 90, 0.2, "submissions accepted after the restart")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=120)
        ready = httpx.get(live.url + "/readyz").json()
    assert problems == [], problems
    assert set(statuses) <= {200, 202, 503}, statuses
    assert ready["checks"]["database"] == "ok"
    ids = list(accepted.values())
    wait_terminal(services, ids, 240)
    counts = assert_jobs_consistent(services, ids)
    assert sum(counts.values()) == len(ids) == len(set(ids))
    assert idempotency_duplicates(services) == 0
    assert worker.alive()
    print(f"FIGURE postgres-restart: responses {statuses}, accepted {len(ids)}, jobs {counts}, lost 0, "
          f"duplicates {idempotency_duplicates(services)}")


# ----------------------------------------------------------------------------- the API process killed mid-upload
class Serve:
    """``echo4d serve --no-worker`` (embedded: SQLite + folder store) as a subprocess."""

    def __init__(self, data_dir: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO4D_")}
        env |= {"OMP_NUM_THREADS": "1", "ECHO4D_RATE_LIMIT_PER_MINUTE": "0"}
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "echo4d"), "serve", "--no-worker", "--port", str(port),
             "--data-dir", str(data_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        self.key: str | None = None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("API key: "):
                self.key = line.split(": ", 1)[1].strip()
            if line.startswith("Echo4D API on"):
                break

        def healthy() -> bool:
            try:
                return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 60, 0.1, "echo4d serve healthy")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture()
def servers() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for s in started:
        s.stop()


def multipart(body: bytes) -> tuple[bytes, bytes, str]:
    """(head, tail, content type) of a multipart/form-data request with ``file`` = ``body`` and profile=smoke."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"profile\"\r\n\r\nsmoke\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"study.zip\"\r\n"
            "Content-Type: application/zip\r\n\r\n").encode()
    return head, f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_api_killed_mid_upload_then_retried_with_the_same_key_gets_one_job(tmp_path: Path, servers: list[Serve]):
    data_dir, port = tmp_path / "var", free_port()
    servers.append(Serve(data_dir, port))
    key = servers[0].key
    assert key
    auth = {"Authorization": f"Bearer {key}"}
    n_slow, n_answered = 6, 2
    bodies = {f"restart-{i}": good_study(50 + i)
              for i in range(n_slow + n_answered)}
    final: dict[str, str] = {}
    first_answer: dict[str, str] = {}
    interrupted: list[str] = []
    lock = threading.Lock()

    def post(idem: str, slow: bool) -> httpx.Response:
        head, tail, ctype = multipart(bodies[idem])

        def trickle() -> Iterator[bytes]:
            yield head
            data = bodies[idem]
            step = max(1, len(data) // 20)
            for i in range(0, len(data), step):
                time.sleep(0.1 if slow else 0.0)  # ~2 s in flight
                yield data[i:i + step]
            yield tail

        return httpx.post(servers[-1].url + "/v1/studies", content=trickle() if slow else head + bodies[idem] + tail,
                          headers={**auth, "Content-Type": ctype, "Idempotency-Key": idem}, timeout=30)

    def client(idem: str, slow: bool) -> None:
        for attempt in range(200):
            try:
                r = post(idem, slow and attempt == 0)
            except httpx.TransportError:
                with lock:
                    interrupted.append(idem)
                time.sleep(0.2)
                continue
            assert r.status_code == 202, r.text
            with lock:
                final[idem] = r.json()["id"]
            return
        raise AssertionError(f"{idem} never accepted")

    # two clients are answered before the crash but "lose" the answer: they will ask again later
    for i in range(n_answered):
        idem = f"restart-{n_slow + i}"
        r = post(idem, slow=False)
        assert r.status_code == 202
        first_answer[idem] = r.json()["id"]
    threads = [threading.Thread(target=client, args=(f"restart-{i}", True), daemon=True) for i in range(n_slow)]
    for t in threads:
        t.start()
    time.sleep(0.8)  # the slow uploads are half sent
    servers[0].kill()
    servers.append(Serve(data_dir, port))  # same data, same port
    for t in threads:
        t.join(timeout=120)
    for idem in first_answer:  # the clients that lost their answer retry now
        client(idem, slow=False)

    assert len(interrupted) >= n_slow // 2, interrupted  # the kill really cut uploads off
    assert set(final) == set(bodies)
    assert all(final[k] == v for k, v in first_answer.items())  # same job back, not a second one
    with sqlite3.connect(data_dir / "echo4d.sqlite3") as db:
        rows = db.execute("SELECT idempotency_key, COUNT(*), MIN(id) FROM jobs GROUP BY idempotency_key").fetchall()
    assert len(rows) == len(bodies) and all(n == 1 for _, n, _ in rows), rows
    assert {k: i for k, _, i in rows} == final
    replay = httpx.post(servers[-1].url + "/v1/studies", headers={**auth, "Idempotency-Key": "restart-0"},
                        files={"file": ("study.zip", bodies["restart-0"], "application/zip")},
                        data={"profile": "smoke"})
    assert replay.status_code == 202 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == final["restart-0"]
    # inputs: every job's inputs are in the store; uploads cut off before the insert left nothing behind
    objects = data_dir / "objects" / "inputs"
    assert sorted(p.name for p in objects.iterdir()) == sorted(final.values())
    assert not list(objects.rglob(".upload-*"))
    print(f"FIGURE api-restart: {len(bodies)} keys ({n_slow} cut mid-upload, {n_answered} answered then retried), "
          f"{len(set(interrupted))} interrupted, jobs {len(rows)}, one per key, orphan inputs 0")
