"""Engine and session factory (built once at start-up and injected), migrations, DB error mapping."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from jobcore.errors import PlatformCode, TransientError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_MIGRATION_LOCK_ID = 0xEC404D  # PostgreSQL advisory lock: one replica migrates at a time


def make_engine(url: str, pool_size: int = 5) -> Engine:
    """An engine with pre-ping (survives a database restart). SQLite gets WAL + immediate transactions."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            private_sqlite_file(Path(path))
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _: Any) -> None:
            dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below control transactions
            cur = dbapi_connection.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # one writer at a time, no upgrade deadlocks

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size, pool_recycle=1800)


def private_sqlite_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600; SQLite gives its -wal/-shm files the same mode)
    and tighten an existing one: it holds key hashes and job metadata."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077 and path.stat().st_uid == os.getuid():
            path.chmod(0o600)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def run_migrations(engine: Engine) -> None:
    """Upgrade the schema to the newest Alembic revision (idempotent, safe across replicas)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_ID})
            conn.commit()
        try:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            if postgres:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_ID})
                conn.commit()


def ping(engine: Engine) -> None:
    with transient_db(), engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def disk_full(exc: OperationalError) -> bool:
    """SQLite's SQLITE_FULL or PostgreSQL's disk_full (53100) / ENOSPC: the write did not happen."""
    text_ = str(exc.orig).lower()
    return (getattr(exc.orig, "sqlite_errorname", "") == "SQLITE_FULL" or "disk is full" in text_
            or getattr(exc.orig, "sqlstate", None) == "53100" or "no space left on device" in text_)


@contextmanager
def transient_db() -> Iterator[None]:
    """Turn 'database unreachable' driver errors into :class:`TransientError` (retryable)."""
    try:
        yield
    except OperationalError as exc:
        if disk_full(exc):  # nothing was committed; the caller may undo what it did before (stored inputs)
            raise TransientError("the database's disk is full", code=PlatformCode.STORE_UNAVAILABLE) from exc
        raise TransientError("the database is unreachable", code=PlatformCode.DATABASE_UNAVAILABLE) from exc
    except PoolTimeoutError as exc:
        raise TransientError("the database is unreachable", code=PlatformCode.DATABASE_UNAVAILABLE) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise TransientError("the database connection was lost", code=PlatformCode.DATABASE_UNAVAILABLE) from exc
        raise
