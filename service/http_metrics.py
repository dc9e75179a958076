"""The API's request metrics: an ASGI middleware counting and timing each request by its route template."""

from __future__ import annotations

import time

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobcore.metrics import Metrics


class HttpMetricsMiddleware:
    """Pure ASGI middleware: count and time each request by its route template (not its path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_label(scope)
            method = str(scope.get("method", "GET"))
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_latency.labels(method, route).observe(time.perf_counter() - start)


def route_label(scope: Scope) -> str:
    """The route template of a request (``/v1/jobs/{job_id}``), never its path; ``unmatched`` when no route serves
    it. Routes FastAPI adds itself (``/docs``, ``/openapi.json``) do not record themselves in the scope."""
    route = scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", ()):
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"
