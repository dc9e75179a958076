"""Shared fixtures: real PostgreSQL/Redis/RabbitMQ on 127.0.0.1, a moto S3 server, small numpy study bundles.

Each test session gets its own PostgreSQL database (``echo4d_test_<pid>_<rand>``, dropped at the
end), its own Redis queue names on DB 15 and its own buckets, so parallel runs do not collide; each
pytest-xdist worker (``make test`` runs ``-n auto``) is such a session. The smoke shape prior is the one thing
the workers of a run share (trained once, under a file lock).
A service that is not running makes the tests needing it skip with an explicit reason.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from service_testkit import ApiHarness, embedded_settings, free_port, study_zip_bytes

# Under pytest-xdist (``make test`` runs ``-n auto``) each worker is one process on a machine with as many cores
# as workers: torch must use one thread per worker or the workers oversubscribe the cores. OMP_NUM_THREADS is
# read when torch is first imported (after this); subprocesses started by the tests inherit it.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/15"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def _port_open(port: int) -> bool:
    with closing(socket.socket()) as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(autouse=True)
def _one_torch_thread_per_xdist_worker() -> Iterator[None]:
    """Some tests (CLI ``--threads``) change torch's thread count; under xdist put it back to one afterwards."""
    yield
    if XDIST_WORKER and "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)


@pytest.fixture(scope="session")
def session_tag() -> str:
    return f"{os.getpid()}_{secrets.token_hex(3)}"


@pytest.fixture(scope="session")
def pg_url(session_tag: str) -> Iterator[str]:
    """SQLAlchemy URL of a fresh PostgreSQL database for this session (dropped afterwards)."""
    if not _port_open(5432):
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    name = f"echo4d_test_{session_tag}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _port_open(6379):
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return REDIS_URL


@pytest.fixture()
def queue_name(session_tag: str, redis_url: str) -> Iterator[str]:
    """A queue name used by this test only; its Redis keys are deleted afterwards."""
    import redis

    name = f"gpu_test_{session_tag}_{secrets.token_hex(2)}"
    yield name
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{name}*"):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def amqp_url() -> str:
    if not _port_open(5672):
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672")
    return AMQP_URL


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """host:port of a local S3-compatible server (moto); the production target is MinIO."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def bucket() -> str:
    return f"echo4d-test-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def smoke_prior(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real shape prior trained with ``TrainConfig.profile("smoke")`` (one thread, ~20 s), once per test run:
    under pytest-xdist the first worker that asks trains it (under a file lock) into the run's shared temporary
    folder and the others load that file. Tests must not modify it."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if XDIST_WORKER else base  # xdist: <run>/popen-gwN -> <run>, shared by this run's workers
    path = shared / "smoke-prior" / "smoke_prior.pt"
    with open(shared / "smoke-prior.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not path.is_file():
                _train_smoke_prior(path, shared / "smoke-prior-cache")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return path


def _train_smoke_prior(path: Path, cache_dir: Path) -> None:
    import torch

    from models.cohort.version import GENERATOR_VERSION
    from models.prior.checkpoint import save_prior
    from models.prior.config import TrainConfig
    from models.prior.train import train_prior

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = TrainConfig.profile("smoke")
        result = train_prior(cfg, device="cpu", cache_dir=cache_dir)
    finally:
        torch.set_num_threads(before)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_prior(result.prior, path, train_config=cfg, metrics={}, curves=result.curves,
               cohort_version=GENERATOR_VERSION)  # written atomically (and under the caller's lock)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture()
def make_study_zip() -> Callable[..., bytes]:
    return study_zip_bytes


@pytest.fixture()
def tmp_data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "var"
    d.mkdir()
    return d


@pytest.fixture()
def api_factory() -> Iterator[Callable[..., ApiHarness]]:
    """Build any number of API harnesses from Settings; all are shut down at the end of the test."""
    from contextlib import ExitStack

    from fastapi.testclient import TestClient

    from cli.composition import serving_app
    from service.auth import create_key
    from service.context import build_services

    stack = ExitStack()

    def make(settings: Any) -> ApiHarness:
        services = build_services(settings)
        stack.callback(services.close)
        _, key = create_key(services.tenants, "t1", services.pepper)
        client = stack.enter_context(TestClient(serving_app(settings, services=services),
                                                raise_server_exceptions=False))
        return ApiHarness(client, services, key)

    with stack:
        yield make


@pytest.fixture()
def api(api_factory: Callable[..., ApiHarness], tmp_data_dir: Path) -> ApiHarness:
    """The embedded API (SQLite + folder store), no worker child: jobs stay queued."""
    return api_factory(embedded_settings(tmp_data_dir))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: SQLite in tmp, or this session's PostgreSQL database (tables emptied)."""
    from sqlalchemy import text

    from jobcore.db.engine import make_engine, run_migrations

    url = f"sqlite:///{tmp_path / 'db.sqlite3'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    engine = make_engine(url)
    run_migrations(engine)
    if request.param == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE jobs, api_keys, tenants CASCADE"))
    engine.dispose()
    return url
