"""``/healthz`` (the process answers), ``/readyz`` (database, broker, store reachable, disk space), ``/metrics``
(here, or on ``ECHO4D_METRICS_PORT`` alone)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from jobcore.db.engine import ping
from jobcore.errors import PlatformCode, TransientError
from models.errors import Echo4DError
from service.api.deps import ServicesDep
from service.context import Services
from service.errors import NotFound
from service.schemas import HealthOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness: the process answers")
def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}},
            summary="Readiness: database, broker and object store reachable, and disk space left for local state")
def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    probes: list[tuple[str, Callable[[], None]]] = [
        ("database", lambda: ping(services.engine)), ("broker", services.queue.ping), ("store", services.store.ping)]
    folders = local_state_folders(services)
    if folders:
        probes.append(("disk", lambda: check_free_space(folders, services.settings.min_free_disk_mb)))
    for name, probe in probes:
        try:
            probe()
            checks[name] = "ok"
        except Echo4DError as exc:
            checks[name] = exc.code.value
        except Exception:
            checks[name] = "error"
    ok = all(v == "ok" for v in checks.values())
    body = HealthOut(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


def local_state_folders(services: Services) -> list[Path]:
    """Folders on this machine that fill up with state: the SQLite file's and the local store's."""
    folders = []
    if services.engine.dialect.name == "sqlite" and services.engine.url.database:
        folders.append(Path(services.engine.url.database).parent)
    if services.store.kind == "local":
        folders.append(services.settings.resolved_store_dir)
    return folders


def check_free_space(folders: list[Path], min_free_mb: int) -> None:
    """TransientError (store_unavailable) when a folder's filesystem has less than ``min_free_mb`` MiB free."""
    for folder in folders:
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            free = 0
        if free < min_free_mb * 1024 * 1024:
            raise TransientError(f"less than {min_free_mb} MiB free for the service's state",
                                 code=PlatformCode.STORE_UNAVAILABLE)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(services: ServicesDep) -> Response:
    if services.settings.metrics_port:  # served on its own port (not published with the API)
        raise NotFound(f"/metrics is served on port {services.settings.metrics_port}")
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
