"""The API's clients: the job core's (:class:`~jobcore.clients.JobClients`) plus authentication and rate limits.

The API keeps one :class:`Services` on ``app.state`` and hands pieces to routes through ``Depends``.
Nothing here is a module-level global.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from jobcore.clients import JobClients, build_clients
from jobcore.metrics import Metrics
from jobcore.queue import JobQueue
from jobcore.settings import Settings
from service.auth import Authenticator, resolve_pepper
from service.ratelimit import RateLimiter


@dataclass
class Services(JobClients):
    authenticator: Authenticator
    limiter: RateLimiter
    pepper: str  # the API key pepper in use (configured, or the embedded install's generated one)


def build_services(settings: Settings, *, metrics: Metrics | None = None, migrate: bool = True,
                   queue: JobQueue | None = None) -> Services:
    """Build every client (:func:`~jobcore.clients.build_clients`), then resolve the API key pepper."""
    clients = build_clients(settings, metrics=metrics, migrate=migrate, queue=queue)
    try:
        pepper = resolve_pepper(settings, clients.tenants)
    except BaseException:
        clients.close()
        raise
    return Services(
        **{f.name: getattr(clients, f.name) for f in fields(JobClients)},
        authenticator=Authenticator(clients.tenants, pepper,
                                    RateLimiter(settings.auth_failures_per_minute, settings.auth_failure_burst)),
        limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst), pepper=pepper,
    )
