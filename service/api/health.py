"""``/healthz`` (the process answers), ``/readyz`` (database, broker, store reachable), ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from models.errors import Echo4DError
from service.api.deps import ServicesDep
from service.db.engine import ping
from service.schemas import HealthOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthOut, summary="Liveness: the process answers")
def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get("/readyz", response_model=HealthOut, responses={503: {"model": HealthOut}},
            summary="Readiness: database, broker and object store reachable")
def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    probes: list[tuple[str, Callable[[], None]]] = [
        ("database", lambda: ping(services.engine)), ("broker", services.queue.ping), ("store", services.store.ping)]
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


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}}})
def metrics(services: ServicesDep) -> Response:
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
