"""The one composition root of the served API (``echo4d serve``): the HTTP layer (:mod:`service.app`) and, in
embedded mode, the worker child process beside it (:mod:`worker.embedded`).

``service`` never imports ``worker``: the embedded worker reaches the API's lifespan as an injected
background hook, built here. Neither side imports torch: the child process does (``python -m worker.embedded``).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import FastAPI

from jobcore.queue import LocalQueue
from jobcore.reconciler import Reconciler
from jobcore.scratch import sweep_scratch
from jobcore.settings import Settings
from service.app import BackgroundService, create_app
from service.context import Services
from worker.embedded import EmbeddedWorkerProcess


def embedded_worker(app: FastAPI, services: Services) -> Sequence[BackgroundService]:
    """Embedded mode (no broker): the supervisor of the worker child process, after recovering the jobs the
    previous worker was running when this service last stopped; none in distributed mode."""
    settings = services.settings
    if not (settings.embedded and settings.embedded_worker and isinstance(services.queue, LocalQueue)):
        return ()
    reconciler = Reconciler(settings, services.jobs, services.queue, services.store, services.metrics)

    def recover() -> None:  # the child is the only worker: every 'running' job is an orphan when it is gone
        reconciler.recover_orphans()
        sweep_scratch(services.jobs, settings.resolved_scratch_dir)  # and their scratch copies

    recover()  # jobs the worker was running when this service last stopped
    worker = EmbeddedWorkerProcess(settings, services.queue.wakeup, on_crash=recover)
    app.state.embedded_worker = worker
    return (worker,)


def serving_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """The API as ``echo4d serve`` runs it: :func:`service.app.create_app` with the embedded worker hook."""
    return create_app(settings, services=services, background=(embedded_worker,))
