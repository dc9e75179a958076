"""API keys (hashed, constant-time check, revocation), the rate limiter, and the admin CLI."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app as cli_app
from jobcore.db.engine import make_engine, make_sessionmaker, run_migrations
from jobcore.db.tenants import TenantRepository
from service.auth import Authenticator, create_key, generate_key, hash_key, parse_key_id
from service.errors import RateLimited, Unauthorized
from service.ratelimit import RateLimiter


@pytest.fixture()
def tenants(tmp_path: Path) -> TenantRepository:
    engine = make_engine(f"sqlite:///{tmp_path / 'k.sqlite3'}")
    run_migrations(engine)
    return TenantRepository(make_sessionmaker(engine))


def test_keys_are_random_and_only_their_hash_is_stored(tenants: TenantRepository):
    key_id, key = create_key(tenants, "acme", "pepper")
    assert parse_key_id(key) == key_id and len(key) > 50
    row = tenants.get_key(key_id)
    assert row is not None and key not in row.key_hash and row.key_hash == hash_key(key, "pepper")
    assert hash_key(key, "other-pepper") != row.key_hash
    assert generate_key()[1] != generate_key()[1]


def test_authenticate_valid_wrong_revoked(tenants: TenantRepository, monkeypatch: pytest.MonkeyPatch):
    key_id, key = create_key(tenants, "acme", "pepper")
    auth = Authenticator(tenants, "pepper")
    assert auth.authenticate(key).tenant_id == tenants.get_or_create("acme").id
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr("service.auth.hmac.compare_digest", spy)
    for bad in (key[:-1] + ("A" if key[-1] != "A" else "B"), f"e4d_{key_id}_guess", "e4d_unknown_xxxxxxxx", "junk"):
        with pytest.raises(Unauthorized):
            auth.authenticate(bad)
    assert len(compared) == 4  # the constant-time comparison runs even for unknown key ids
    assert tenants.revoke_key(key_id)
    with pytest.raises(Unauthorized):
        auth.authenticate(key)
    assert not tenants.revoke_key(key_id)


def test_rate_limiter_refills_over_time():
    now = [0.0]
    limiter = RateLimiter(60, 2, clock=lambda: now[0])
    limiter.check("k")
    limiter.check("k")
    with pytest.raises(RateLimited) as err:
        limiter.check("k")
    assert err.value.headers["Retry-After"] == "1"
    limiter.check("other")
    now[0] += 1.0
    limiter.check("k")
    RateLimiter(0, 1).check("k")  # disabled


def test_admin_cli_create_list_revoke(tmp_path: Path):
    runner = CliRunner()
    data = str(tmp_path / "var")
    made = runner.invoke(cli_app, ["admin", "create-key", "--tenant", "hospital-a", "--data-dir", data])
    assert made.exit_code == 0, made.output
    key = next(line.split(": ", 1)[1] for line in made.output.splitlines() if line.startswith("API key: "))
    key_id = parse_key_id(key)
    listed = runner.invoke(cli_app, ["admin", "list-keys", "--data-dir", data])
    assert key_id in listed.output and "hospital-a" in listed.output and key not in listed.output
    assert runner.invoke(cli_app, ["admin", "revoke-key", key, "--data-dir", data]).exit_code == 0
    assert "revoked" in runner.invoke(cli_app, ["admin", "list-keys", "--data-dir", data]).output
    assert runner.invoke(cli_app, ["admin", "revoke-key", key_id, "--data-dir", data]).exit_code == 1
