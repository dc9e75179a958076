"""The composition root: every client (database, store, queue, metrics, auth) built once from Settings.

The API keeps one :class:`Services` on ``app.state`` and hands pieces to routes through
``Depends``; the worker builds its own per process. Nothing here is a module-level global.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.auth import Authenticator, resolve_pepper
from service.config import Settings
from service.db.engine import make_engine, make_sessionmaker, run_migrations
from service.db.jobs import JobRepository
from service.db.tenants import TenantRepository
from service.metrics import Metrics
from service.queue import CeleryQueue, JobQueue, LocalQueue
from service.ratelimit import RateLimiter
from service.storage import ObjectStore, build_store


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    jobs: JobRepository
    tenants: TenantRepository
    store: ObjectStore
    queue: JobQueue
    metrics: Metrics
    authenticator: Authenticator
    limiter: RateLimiter
    pepper: str  # the API key pepper in use (configured, or the embedded install's generated one)

    def close(self) -> None:
        self.queue.close()
        self.engine.dispose()


def build_queue(settings: Settings) -> JobQueue:
    if settings.embedded:
        return LocalQueue()
    from worker.app import create_celery

    return CeleryQueue(create_celery(settings), settings.queue_name)


def build_services(settings: Settings, *, metrics: Metrics | None = None, migrate: bool = True,
                   queue: JobQueue | None = None) -> Services:
    """Build every client; run migrations and create the bucket/folder (idempotent)."""
    engine = make_engine(settings.resolved_database_url, settings.db_pool_size)
    if migrate:
        run_migrations(engine)
    sessions = make_sessionmaker(engine)
    store = build_store(settings)
    store.ensure_ready()
    tenants = TenantRepository(sessions)
    pepper = resolve_pepper(settings, tenants)
    return Services(
        settings=settings, engine=engine, sessions=sessions, jobs=JobRepository(sessions), tenants=tenants,
        store=store, queue=queue if queue is not None else build_queue(settings),
        metrics=metrics if metrics is not None else Metrics(),
        authenticator=Authenticator(tenants, pepper,
                                    RateLimiter(settings.auth_failures_per_minute, settings.auth_failure_burst)),
        limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst), pepper=pepper,
    )
