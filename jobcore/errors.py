"""The platform's error codes and errors, in the one hierarchy rooted at :class:`models.errors.Echo4DError`.

:class:`PlatformCode` holds the codes the platform raises (the store, database and broker unreachable, the
requests the API refuses, the jobs the platform ends); ``models.errors.ErrorCode`` holds the domain's. Both are
part of the public API (the ``code`` of every problem+json and of a failed job): never rename one.
"""

from __future__ import annotations

from enum import StrEnum

from models.errors import Echo4DError


class PlatformCode(StrEnum):
    """Stable error codes of the platform. Grouped by the kind of error that raises them."""

    # Transient infrastructure problems (retrying may succeed).
    STORE_UNAVAILABLE = "store_unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"
    BROKER_UNAVAILABLE = "broker_unavailable"
    # Requests the API refuses.
    NOT_FOUND = "not_found"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    # Jobs the platform ended.
    TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
    OUT_OF_MEMORY = "out_of_memory"
    WORKER_LOST = "worker_lost"  # the job's worker died (e.g. killed) on every allowed attempt


class TransientError(Echo4DError):
    """An infrastructure dependency failed; retrying later may succeed."""

    retryable = True
    default_code = PlatformCode.STORE_UNAVAILABLE


class Conflict(Echo4DError):
    """The request conflicts with the job's state (e.g. erasing a running job); the API answers 409."""

    default_code = PlatformCode.CONFLICT
