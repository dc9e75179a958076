"""API keys: generation, keyed hashing, constant-time verification, and the request principal.

A key looks like ``e4d_<key_id>_<secret>``: ``key_id`` (10 random chars) finds the row, the
whole key is checked against ``HMAC-SHA256(pepper, key)`` with :func:`hmac.compare_digest`.
Keys carry ~190 bits of randomness, so a fast keyed hash is enough (no password KDF needed).
Only the hash is stored; the plain key is shown once when it is created.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import string
from dataclasses import dataclass

import structlog

from jobcore.db.tenants import TenantRepository
from jobcore.settings import Settings
from service.errors import InsecureConfiguration, RateLimited, Unauthorized
from service.ratelimit import RateLimiter

log = structlog.get_logger(__name__)

_ALPHABET = string.ascii_letters + string.digits
KEY_PREFIX = "e4d_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant every job read or write is scoped to."""

    tenant_id: str
    key_id: str


def hash_key(key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def generate_key() -> tuple[str, str]:
    """A new (key_id, full key)."""
    key_id = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_key_id(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    parts = key[len(KEY_PREFIX):].split("_", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0]


def create_key(tenants: TenantRepository, tenant_name: str, pepper: str, label: str | None = None) -> tuple[str, str]:
    """Create (or reuse) tenant ``tenant_name`` and a new key for it; returns (key_id, plain key)."""
    tenant = tenants.get_or_create(tenant_name)
    key_id, key = generate_key()
    tenants.add_key(tenant.id, key_id, hash_key(key, pepper), label)
    return key_id, key


_DUMMY_HASH = "0" * 64
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "change-me-in-production", "changeme", "secret", "pepper"})
PEPPER_FILE = "api_key_pepper"


def check_deployment_secrets(settings: Settings) -> None:
    """Distributed mode refuses to start with an empty or placeholder pepper or webhook secret."""
    if settings.embedded:
        return
    weak = [name for name, value in (("ECHO4D_API_KEY_PEPPER", settings.api_key_pepper),
                                     ("ECHO4D_WEBHOOK_SECRET", settings.webhook_secret))
            if value is not None and value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS]
    if weak:
        raise InsecureConfiguration(f"refusing to start: {' and '.join(weak)} must be set to a long random secret "
                                    "(e.g. `openssl rand -hex 32`), not empty or a placeholder")


def resolve_pepper(settings: Settings, tenants: TenantRepository) -> str:
    """The pepper mixed into key hashes: the configured one; in embedded mode without one, a random pepper
    generated on the first start and kept (0600) in ``<data_dir>/api_key_pepper``. An embedded install that
    already holds keys hashed with the empty pepper keeps it (its keys keep working)."""
    check_deployment_secrets(settings)
    configured = settings.api_key_pepper.get_secret_value()
    if configured:
        return configured
    path = settings.data_dir / PEPPER_FILE
    if not path.exists():
        if tenants.count() > 0:
            log.warning("empty_api_key_pepper", hint="set ECHO4D_API_KEY_PEPPER and re-issue the keys")
            return ""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:  # another process of this install won the race: use its pepper
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    return path.read_text().strip()


class Authenticator:
    """Resolves a presented key to a :class:`Principal` or raises :class:`Unauthorized` (401).

    With a ``failures`` limiter, wrong keys are counted per key id and per client address; once either has
    used its budget, further attempts are answered 429 without checking the key (brute force, log floods).
    """

    def __init__(self, tenants: TenantRepository, pepper: str, failures: RateLimiter | None = None) -> None:
        self._tenants = tenants
        self._pepper = pepper
        self._failures = failures

    def authenticate(self, presented: str | None, client: str | None = None) -> Principal:
        if not presented:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'")
        key_id = parse_key_id(presented)
        buckets = [f"key:{key_id}" if key_id else "key:-", f"addr:{client or '-'}"]
        if self._failures is not None:
            waits = [w for b in buckets if (w := self._failures.blocked(b)) is not None]
            if waits:
                raise RateLimited(max(waits), "too many failed authentications")
        try:
            return self._verify(presented, key_id)
        except Unauthorized:
            if self._failures is not None:
                for b in buckets:
                    with contextlib.suppress(RateLimited):
                        self._failures.check(b)
            raise

    def _verify(self, presented: str, key_id: str | None) -> Principal:
        row = self._tenants.get_key(key_id) if key_id else None
        computed = hash_key(presented, self._pepper)
        stored = row.key_hash if row is not None else _DUMMY_HASH
        valid = hmac.compare_digest(computed, stored)  # constant time, also when the row is missing
        if row is None or not valid or row.revoked_at is not None:
            raise Unauthorized("invalid or revoked API key")
        return Principal(tenant_id=row.tenant_id, key_id=row.key_id)
