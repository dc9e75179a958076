"""Tenants and API keys in the database (hashing and verification live in ``service.auth``)."""

from __future__ import annotations

from uuid import uuid4

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from jobcore.db.engine import transient_db
from jobcore.db.models import ApiKey, Tenant, utcnow


class TenantRepository:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get_or_create(self, name: str) -> Tenant:
        with transient_db(), self._sessions.begin() as s:
            tenant = s.scalars(select(Tenant).where(Tenant.name == name)).first()
            if tenant is None:
                tenant = Tenant(id=str(uuid4()), name=name, created_at=utcnow())
                s.add(tenant)
            return tenant

    def count(self) -> int:
        with transient_db(), self._sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Tenant)) or 0)

    def add_key(self, tenant_id: str, key_id: str, key_hash: str, label: str | None = None) -> ApiKey:
        row = ApiKey(key_id=key_id, tenant_id=tenant_id, key_hash=key_hash, label=label, created_at=utcnow())
        with transient_db(), self._sessions.begin() as s:
            s.add(row)
        return row

    def get_key(self, key_id: str) -> ApiKey | None:
        with transient_db(), self._sessions() as s:
            return s.get(ApiKey, key_id)

    def revoke_key(self, key_id: str) -> bool:
        with transient_db(), self._sessions.begin() as s:
            res = s.execute(update(ApiKey).where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
                            .values(revoked_at=utcnow()))
            return bool(res.rowcount == 1)  # type: ignore[attr-defined]

    def list_keys(self) -> list[tuple[ApiKey, str]]:
        """Every key with its tenant's name (hashes included; never print them)."""
        with transient_db(), self._sessions() as s:
            rows = s.execute(select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id)
                             .order_by(ApiKey.created_at)).all()
            return [(k, str(n)) for k, n in rows]
