"""Service errors and the ONE handler that turns every error into RFC 9457 problem+json.

``models.errors.Echo4DError`` is the root (domain codes ``models.errors.ErrorCode``, platform codes and
``TransientError``/``Conflict`` in ``jobcore.errors``). The service adds subclasses that carry an HTTP
status; FastAPI's validation errors, Starlette's HTTP exceptions (404 route, 405, 413 from
the body limit) and anything unexpected go through the same :func:`problem_response`, so a
client never sees HTML or a traceback.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from jobcore.errors import Conflict, PlatformCode, TransientError
from models.errors import Echo4DError, ErrorCode, InputError, ModelError

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:echo4d:problem:"
log = structlog.get_logger(__name__)


class ServiceError(Echo4DError):
    """An error of the service layer with its HTTP status and optional extra headers."""

    status: ClassVar[int] = 500

    def __init__(
        self, detail: str, *, code: StrEnum | None = None, field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail, code=code, field=field)
        self.headers = headers or {}


class NotFound(ServiceError):
    status = 404
    default_code = PlatformCode.NOT_FOUND


class Unauthorized(ServiceError):
    status = 401
    default_code = PlatformCode.UNAUTHORIZED

    def __init__(self, detail: str = "a valid API key is required") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="echo4d"'})


class RateLimited(ServiceError):
    status = 429
    default_code = PlatformCode.RATE_LIMITED

    def __init__(self, retry_after_s: float, reason: str = "rate limit exceeded") -> None:
        seconds = max(1, int(retry_after_s + 0.999))
        super().__init__(f"{reason}; retry in {seconds} s", headers={"Retry-After": str(seconds)})


class PayloadTooLarge(ServiceError, StarletteHTTPException):  # type: ignore[misc]
    """Also a Starlette HTTPException, so FastAPI's body parsing lets it through to our handler."""

    status = 413
    default_code = PlatformCode.PAYLOAD_TOO_LARGE

    def __init__(self, limit: int) -> None:
        ServiceError.__init__(self, f"the request body is larger than the {limit}-byte limit")
        self.status_code = 413


class RequestTimeout(ServiceError, StarletteHTTPException):  # type: ignore[misc]
    """The client stopped sending its body (an idle upload); also a Starlette HTTPException, like 413."""

    status = 408
    default_code = PlatformCode.REQUEST_TIMEOUT

    def __init__(self, idle_s: float) -> None:
        ServiceError.__init__(self, f"no request body bytes arrived for {idle_s:g} s", headers={"Connection": "close"})
        self.status_code = 408


class InsecureConfiguration(ServiceError):
    """Start-up refused: a secret the deployment must set is empty or a placeholder."""

    default_code = ErrorCode.INTERNAL


class UnsupportedMediaType(ServiceError):
    status = 415
    default_code = PlatformCode.UNSUPPORTED_MEDIA_TYPE


class NotAcceptable(ServiceError):
    """406: the ``Accept`` header admits none of the media types the route serves."""

    status = 406
    default_code = PlatformCode.UNSUPPORTED_MEDIA_TYPE


class RangeNotSatisfiable(ServiceError):
    status = 416
    default_code = ErrorCode.VALIDATION_FAILED


class ServiceUnavailable(ServiceError):
    status = 503
    default_code = PlatformCode.BROKER_UNAVAILABLE


_HTTP_STATUS_CODES: dict[int, StrEnum] = {
    400: ErrorCode.VALIDATION_FAILED,
    401: PlatformCode.UNAUTHORIZED,
    403: PlatformCode.FORBIDDEN,
    404: PlatformCode.NOT_FOUND,
    405: ErrorCode.VALIDATION_FAILED,
    409: PlatformCode.CONFLICT,
    413: PlatformCode.PAYLOAD_TOO_LARGE,
    415: PlatformCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION_FAILED,
    429: PlatformCode.RATE_LIMITED,
}
_TITLES: dict[int, str] = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 416: "Range Not Satisfiable",
    422: "Unprocessable Content",
    429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable",
}


def http_status_of(exc: Echo4DError) -> int:
    """HTTP status for a typed error: input → 422, conflict → 409, transient → 503, service errors carry their
    own."""
    if isinstance(exc, ServiceError):
        return exc.status
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, InputError):
        return 413 if exc.code in (ErrorCode.TOO_LARGE, PlatformCode.PAYLOAD_TOO_LARGE) else 422
    if isinstance(exc, TransientError):
        return 503
    if isinstance(exc, ModelError):
        return 500
    return 500


def problem_body(
    status: int, code: StrEnum | str, detail: str, *, field: str | None = None, instance: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An RFC 9457 problem object with Echo4D's stable ``code`` extension member."""
    code_value = str(code)  # a StrEnum member is its value
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code_value,
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code_value,
    }
    if field:
        body["field"] = field
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return body


def bounded_instance(path: str | None, limit: int = 200) -> str | None:
    """The request path for a problem's ``instance``, cut so that a crafted path is never echoed in full."""
    return path if path is None or len(path) <= limit else path[:limit] + "…"


def problem_of(exc: Echo4DError, instance: str | None = None) -> dict[str, Any]:
    return problem_body(http_status_of(exc), exc.code, exc.detail, field=exc.field, instance=instance)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Location and message of each failed field; the offending input value is never echoed."""
    return [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}
        for err in exc.errors()
    ]


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (for ``Allow`` on a 405)."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def problem_response(request: Request, exc: Exception) -> JSONResponse:
    """The single exception handler: any exception → ``application/problem+json``."""
    instance = bounded_instance(request.url.path)
    headers: dict[str, str] = {}
    if isinstance(exc, Echo4DError):
        status = http_status_of(exc)
        body = problem_of(exc, instance)
        if isinstance(exc, ServiceError):
            headers.update(exc.headers)
        if isinstance(exc, TransientError):
            headers.setdefault("Retry-After", "5")
        if status >= 500:
            log.warning("request_failed", code=body["code"], status=status, error_type=type(exc).__name__)
    elif isinstance(exc, RequestValidationError):
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        field = ".".join(first["loc"][1:]) or None
        status = 422
        body = problem_body(status, ErrorCode.VALIDATION_FAILED, f"{'.'.join(first['loc'])}: {first['msg']}",
                            field=field, instance=instance, extra={"errors": errors})
    elif isinstance(exc, StarletteHTTPException):
        status = exc.status_code
        code = _HTTP_STATUS_CODES.get(status, ErrorCode.INTERNAL if status >= 500 else ErrorCode.VALIDATION_FAILED)
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(status, "error")
        body = problem_body(status, code, detail, instance=instance)
        headers.update(exc.headers or {})
        if status == 405:  # Starlette lists only the first route that matched the path
            headers["Allow"] = _allowed_methods(request)
    else:
        status = 500
        body = problem_body(status, ErrorCode.INTERNAL, "internal error; it has been logged", instance=instance)
        log.error("unhandled_exception", error_type=type(exc).__name__, exc_info=exc)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def install_problem_handler(app: FastAPI) -> None:
    """Register :func:`problem_response` for every exception family."""
    for family in (Echo4DError, RequestValidationError, StarletteHTTPException, Exception):
        app.add_exception_handler(family, problem_response)
