"""``create_app(settings)``: the FastAPI application factory.

Start-up (lifespan) builds every client once (database + migrations, object store, queue,
metrics, auth), stores them on ``app.state.services`` for ``Depends``, and starts the injected background
services (in embedded mode the worker child process, passed in by the composition root ``cli.composition``:
this package never imports the worker, and the API process never imports torch); the reconciler thread runs in
every API replica.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

import structlog
from fastapi import FastAPI
from starlette.formparsers import MultiPartParser

from jobcore.logging import configure_logging
from jobcore.metrics import Metrics, StateCollector
from jobcore.reconciler import Reconciler, ReconcilerThread
from jobcore.settings import Settings
from jobcore.webhooks import WebhookSender
from models import __version__
from service.api import artifacts, dicom_results, dicomweb, health, jobs, studies, viewer
from service.context import Services, build_services
from service.errors import install_problem_handler
from service.http_metrics import HttpMetricsMiddleware
from service.middleware import AuthFirstMiddleware, BodyLimitMiddleware, RequestLogMiddleware
from service.openapi import install_problem_openapi

log = structlog.get_logger(__name__)
FORM_SPOOL_BYTES = 16 * 1024

DESCRIPTION = """Echo4D turns 2D apical echo (A4C/A2C/A3C LV masks or cines) into a beating 3D LV mesh.

Submit a study (`POST /v1/studies` or DICOMweb STOW-RS), poll `GET /v1/jobs/{id}`, then download
`mesh.glb`, `report.json` and the other artifacts. Authenticate with `Authorization: Bearer <API key>`.
Errors are RFC 9457 `application/problem+json` with a stable `code`. A web viewer (job list, progress, the
beating mesh, volume curve and per-view fits) is at `/v1/viewer`."""


class BackgroundService(Protocol):
    """Something the API runs beside its requests, from start-up to shutdown (a thread, a child process)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


BackgroundHook = Callable[[FastAPI, Services], Sequence[BackgroundService]]
"""Called at start-up with the app and its clients; returns what it built (started in order, stopped in order)."""


def _start_background(app: FastAPI, services: Services, hooks: Sequence[BackgroundHook]) -> list[BackgroundService]:
    """The injected background services (e.g. the embedded worker), then the reconciler thread (every replica)."""
    settings = services.settings
    threads: list[BackgroundService] = []
    for hook in hooks:
        threads.extend(hook(app, services))
    if settings.reconcile_interval_s > 0:
        webhooks = WebhookSender(settings, services.jobs, services.metrics)
        reconciler = Reconciler(settings, services.jobs, services.queue, services.store, services.metrics, webhooks)
        threads.append(ReconcilerThread(reconciler, settings.reconcile_interval_s))
    for t in threads:
        t.start()
    return threads


def create_app(settings: Settings | None = None, *, services: Services | None = None,
               background: Sequence[BackgroundHook] = ()) -> FastAPI:
    """Build the API. ``services`` may be passed (tests); otherwise they are built at start-up. ``background``:
    hooks that build what runs beside the API (the composition root, ``cli.composition``, passes the embedded
    worker's); the reconciler thread runs whenever ``reconcile_interval_s`` is set."""
    settings = settings or (services.settings if services is not None else Settings())
    configure_logging(settings)
    metrics = services.metrics if services is not None else Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = services or build_services(settings, metrics=metrics)
        collector = StateCollector(svc.jobs.counts_by_status, svc.queue.depth, svc.queue.name)
        metrics.registry.register(collector)
        app.state.services = svc
        threads = _start_background(app, svc, background)
        metrics_server = None
        if settings.metrics_port:
            from prometheus_client import start_http_server

            metrics_server, _ = start_http_server(settings.metrics_port, settings.host, registry=metrics.registry)
        log.info("api_started", version=__version__, embedded=settings.embedded, store=svc.store.kind)
        try:
            yield
        finally:
            for t in threads:
                t.stop()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            metrics.registry.unregister(collector)
            if services is None:
                svc.close()

    app = FastAPI(
        title="Echo4D API", version=__version__, description=DESCRIPTION, lifespan=lifespan,
        form_limits={"max_files": settings.max_upload_files + 1, "max_fields": 32, "max_part_size": 128 * 1024},
    )
    # Starlette keeps each uploaded file in memory up to 1 MiB: with 1000 files that is 1 GB per request. Spool
    # to disk past 16 KiB instead (at most max_upload_files x 16 KiB in memory per request).
    MultiPartParser.spool_max_size = FORM_SPOOL_BYTES
    install_problem_handler(app)
    install_problem_openapi(app)
    for router in (studies.router, dicomweb.router, jobs.router, artifacts.router, dicom_results.router,
                   health.router, viewer.router):
        app.include_router(router)
    app.mount(viewer.STATIC_PREFIX, viewer.static_files(), name="viewer-static")
    app.add_middleware(AuthFirstMiddleware)  # inside the body limit: an oversized declared length is 413 at once
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes,
                       idle_timeout_s=settings.body_idle_timeout_s)
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestLogMiddleware)
    return app
