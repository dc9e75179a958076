"""FastAPI dependencies: the start-up-built clients and the authenticated principal, injected per request."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from jobcore.db.jobs import JobRepository
from jobcore.settings import Settings
from jobcore.storage import ObjectStore
from service.auth import Principal
from service.context import Services

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key in a header.")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(services: ServicesDep) -> Settings:
    return services.settings


def get_jobs(services: ServicesDep) -> JobRepository:
    return services.jobs


def get_store(services: ServicesDep) -> ObjectStore:
    return services.store


SettingsDep = Annotated[Settings, Depends(get_settings)]
JobsDep = Annotated[JobRepository, Depends(get_jobs)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]


def authenticate_request(services: Services, presented: str | None, client: str | None) -> Principal:
    """Resolve the API key (401; 429 after too many failures from this key id or address) and apply the per-key
    rate limit (429)."""
    principal = services.authenticator.authenticate(presented, client)
    services.limiter.check(principal.key_id)
    return principal


def authenticate(
    request: Request,
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """The request's principal: already resolved by ``AuthFirstMiddleware`` for requests with a body, else here."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        presented = bearer.credentials if bearer is not None else api_key
        principal = authenticate_request(services, presented, request.client.host if request.client else None)
    structlog.contextvars.bind_contextvars(tenant_id=principal.tenant_id, key_id=principal.key_id)
    return principal


PrincipalDep = Annotated[Principal, Depends(authenticate)]
