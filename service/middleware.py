"""ASGI middleware: request logging (request id, no query strings or keys), authentication before any body is
read, and the request body limits (size, idle time)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import (
    PROBLEM_MEDIA_TYPE,
    PayloadTooLarge,
    RequestTimeout,
    ServiceError,
    bounded_instance,
    problem_of,
)
from service.http_metrics import route_label

log = structlog.get_logger("service.access")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_label(scope)
            log.info("request", method=scope.get("method"), route=route, status=status,
                     duration_ms=round(1000 * (time.perf_counter() - start), 2))
            structlog.contextvars.clear_contextvars()


def presented_key(headers: Headers) -> str | None:
    """The API key of a request: ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key") or None


async def _answer_problem(exc: ServiceError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer ``exc`` as problem+json without reading the body, and close the connection (the unread body)."""
    response = JSONResponse(problem_of(exc, bounded_instance(scope.get("path"))), status_code=exc.status,
                            media_type=PROBLEM_MEDIA_TYPE, headers={**exc.headers, "Connection": "close"})
    await response(scope, receive, send)


class AuthFirstMiddleware:
    """Authenticate requests that carry a body (``/v1`` POST/PUT/PATCH) before a byte of it is read: a client
    without a valid key gets its 401/429 at once instead of after uploading (and spooling) hundreds of MB.

    The principal is left in ``scope["state"]`` for the route's ``authenticate`` dependency (no second lookup,
    no second rate-limit token).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH")
                or not str(scope.get("path", "")).startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        from service.api.deps import authenticate_request

        services = scope["app"].state.services
        client = scope.get("client")
        try:
            principal = await run_in_threadpool(authenticate_request, services, presented_key(Headers(scope=scope)),
                                                client[0] if client else None)
        except ServiceError as exc:
            await _answer_problem(exc, scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Request body limits as problem+json: 413 for bodies over ``max_bytes`` (up front from Content-Length, else
    while streaming), 408 when no body bytes arrive for ``idle_timeout_s`` (a held upload never ties up a
    request slot for ever)."""

    def __init__(self, app: ASGIApp, max_bytes: int, idle_timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.idle_timeout_s = idle_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and (len(declared) > 18 or int(declared) > self.max_bytes):
            await _answer_problem(PayloadTooLarge(self.max_bytes), scope, receive, send)
            return
        seen = 0

        body_done = False

        async def limited_receive() -> Message:
            nonlocal seen, body_done
            if body_done:  # after the body, receive() only waits for a disconnect (e.g. during a long download)
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.idle_timeout_s)
            except TimeoutError:
                raise RequestTimeout(self.idle_timeout_s) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(self.max_bytes)
                body_done = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)
