"""Fixtures of the reliability tests: a smoke shape prior, a stoppable S3 server, the distributed stack's
settings, Celery worker subprocesses, and a tiny filesystem. (Redis and PostgreSQL restarts use private servers:
see test_reliability_long_faults.py.)

Everything is real: PostgreSQL 127.0.0.1:5432, Redis 127.0.0.1:6379 (DB 15), moto's S3 server driven by the
real ``minio`` client, ``echo4d worker`` subprocesses and uvicorn. Jobs that must *succeed* run the real
reconstruction with a shape prior trained with the prior's ``smoke`` profile (``smoke_prior`` of tests/conftest.py,
about 20 s, once per run).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from reliability_kit import (
    MotoControl,
    WorkerProcess,
    settings_from_env,
)
from service_testkit import ApiHarness, free_port


@pytest.fixture()
def one_torch_thread() -> Iterator[None]:
    """In-process reconstructions on one thread (as the worker subprocesses run: OMP_NUM_THREADS=1)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def moto_control() -> Iterator[MotoControl]:
    control = MotoControl(free_port())
    control.start()
    yield control
    if control.running:
        control.stop()


@pytest.fixture(scope="module")
def stack_env(stack_env_base: dict[str, str], smoke_prior: Path) -> dict[str, str]:
    """``stack_env_base`` plus the smoke prior: the stack of the tests whose jobs must reconstruct."""
    return {**stack_env_base, "ECHO4D_PRIOR_CHECKPOINT": str(smoke_prior)}


@pytest.fixture(scope="module")
def stack_env_base(pg_url: str, redis_url: str, moto_control: MotoControl, tmp_path_factory: pytest.TempPathFactory,
                   session_tag: str) -> Iterator[dict[str, str]]:
    """ECHO4D_* variables of one module's stack: PostgreSQL, a Redis queue and a bucket of its own, fast
    heartbeats (0.5 s, stale after 6 s: importing torch can starve the heartbeat thread for seconds on a busy
    machine), a reconciler every second, 3 attempts, retry backoff 2.5-5 s then 5-10 s; no prior (the tests
    whose jobs never reach the reconstruction need none; ``stack_env`` adds the smoke prior)."""
    import redis

    if not moto_control.running:
        moto_control.start()
    tag = secrets.token_hex(3)
    queue = f"gpu_rel_{session_tag}_{tag}"
    env = {
        "ECHO4D_DATABASE_URL": pg_url, "ECHO4D_BROKER_URL": redis_url, "ECHO4D_QUEUE_NAME": queue,
        "ECHO4D_STORE_BACKEND": "minio", "ECHO4D_S3_ENDPOINT": moto_control.endpoint,
        "ECHO4D_S3_BUCKET": f"echo4d-rel-{tag}", "ECHO4D_S3_ACCESS_KEY": "testing", "ECHO4D_S3_SECRET_KEY": "testing",
        "ECHO4D_DATA_DIR": str(tmp_path_factory.mktemp("stack-var")),
        "ECHO4D_HEARTBEAT_INTERVAL_S": "0.5", "ECHO4D_HEARTBEAT_STALE_S": "6", "ECHO4D_RECONCILE_INTERVAL_S": "1",
        "ECHO4D_REQUEUE_AFTER_S": "2", "ECHO4D_JOB_MAX_ATTEMPTS": "3", "ECHO4D_RETRY_BACKOFF_MAX_S": "10",
        "ECHO4D_WORKER_METRICS_PORT": "0", "ECHO4D_API_KEY_PEPPER": "rel-pepper", "ECHO4D_RATE_LIMIT_PER_MINUTE": "0",
        "ECHO4D_DEVICE": "cpu", "ECHO4D_DEFAULT_PROFILE": "smoke", "ECHO4D_LOG_LEVEL": "INFO",
    }
    yield env
    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(redis_url, socket_timeout=5)
        for key in client.scan_iter(f"{queue}*"):
            client.delete(key)
        client.close()


@pytest.fixture(scope="module")
def stack_worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """One prefork ``echo4d worker`` (concurrency 1) serving the module's queue; its children may be killed."""
    worker = WorkerProcess(stack_env, tmp_path_factory.mktemp("worker-log") / "worker.log", pool="prefork",
                           concurrency=1)
    yield worker
    worker.stop()


@pytest.fixture()
def stack_api(api_factory: Callable[..., ApiHarness], stack_env: dict[str, str]) -> ApiHarness:
    """The API of ``stack_env`` in this process (TestClient; its lifespan runs the reconciler thread)."""
    return api_factory(settings_from_env(stack_env))


@pytest.fixture()
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted for this test (disk full in a few writes); unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
