"""The job core's clients (database, job and tenant tables, object store, queue, metrics), built once from Settings.

The API extends them with its authentication (``service.context.Services``); a worker process builds its own
(``worker.tasks.build_worker_context``). Nothing here is a module-level global.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from jobcore.celery_app import create_celery
from jobcore.db.engine import make_engine, make_sessionmaker, run_migrations
from jobcore.db.jobs import JobRepository
from jobcore.db.tenants import TenantRepository
from jobcore.metrics import Metrics
from jobcore.queue import CeleryQueue, JobQueue, LocalQueue
from jobcore.settings import Settings
from jobcore.storage import ObjectStore, build_store


@dataclass
class JobClients:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    jobs: JobRepository
    tenants: TenantRepository
    store: ObjectStore
    queue: JobQueue
    metrics: Metrics

    def close(self) -> None:
        self.queue.close()
        self.engine.dispose()


def build_queue(settings: Settings) -> JobQueue:
    """The worker child's wake-up (embedded) or the Celery broker (distributed)."""
    if settings.embedded:
        return LocalQueue()
    return CeleryQueue(create_celery(settings), settings.queue_name)


def build_clients(settings: Settings, *, metrics: Metrics | None = None, migrate: bool = True,
                  queue: JobQueue | None = None) -> JobClients:
    """Build every client; run migrations and create the bucket/folder (idempotent)."""
    engine = make_engine(settings.resolved_database_url, settings.db_pool_size)
    if migrate:
        run_migrations(engine)
    sessions = make_sessionmaker(engine)
    store = build_store(settings)
    store.ensure_ready()
    return JobClients(
        settings=settings, engine=engine, sessions=sessions, jobs=JobRepository(sessions),
        tenants=TenantRepository(sessions), store=store, queue=queue if queue is not None else build_queue(settings),
        metrics=metrics if metrics is not None else Metrics(),
    )
