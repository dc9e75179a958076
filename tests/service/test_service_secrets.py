"""Secrets at rest (issue #15 row 12): the SQLite file is private, distributed mode refuses empty or placeholder
secrets, and the embedded mode generates its own pepper on the first start."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from service_testkit import embedded_settings

from jobcore.settings import Settings
from service.auth import PEPPER_FILE, create_key, hash_key
from service.context import build_services
from service.errors import InsecureConfiguration


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sqlite_database_is_created_owner_only(tmp_path: Path):
    old = os.umask(0o022)  # the usual umask: files 0644 unless created otherwise
    try:
        services = build_services(embedded_settings(tmp_path / "var"))
        services.close()
    finally:
        os.umask(old)
    db = tmp_path / "var" / "echo4d.sqlite3"
    assert _mode(db) == 0o600
    assert all(_mode(p) & 0o077 == 0 for p in db.parent.glob("echo4d.sqlite3*")), list(db.parent.iterdir())


def test_an_existing_world_readable_database_is_tightened(tmp_path: Path):
    services = build_services(embedded_settings(tmp_path))
    services.close()
    db = tmp_path / "echo4d.sqlite3"
    db.chmod(0o644)
    build_services(embedded_settings(tmp_path)).close()
    assert _mode(db) == 0o600


@pytest.mark.parametrize(("pepper", "webhook"), [("", None), ("change-me-in-production", None),
                                                 ("a-real-pepper-3f9c1b", "change-me-in-production"),
                                                 ("  ", "s3cret-long-enough")])
def test_distributed_mode_refuses_empty_or_placeholder_secrets(tmp_path: Path, pepper: str, webhook: str | None):
    settings = Settings(data_dir=tmp_path, broker_url="redis://127.0.0.1:6379/15", api_key_pepper=pepper,
                        webhook_secret=webhook)
    with pytest.raises(InsecureConfiguration, match="refusing to start"):
        build_services(settings)
    assert not (tmp_path / PEPPER_FILE).exists()


def test_embedded_mode_generates_and_keeps_a_random_pepper(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, embedded_worker=False, reconcile_interval_s=0)
    first = build_services(settings)
    try:
        pepper = first.pepper
        _, key = create_key(first.tenants, "t", pepper)
        row = first.tenants.get_key(key.split("_")[1])
        assert row is not None and row.key_hash != hash_key(key, "")  # not hashed with an empty pepper
    finally:
        first.close()
    assert len(pepper) == 64 and _mode(tmp_path / PEPPER_FILE) == 0o600
    again = build_services(settings)
    try:
        assert again.pepper == pepper and again.authenticator.authenticate(key).tenant_id == row.tenant_id
    finally:
        again.close()


def test_an_embedded_install_with_keys_under_the_empty_pepper_keeps_working(tmp_path: Path):
    settings = Settings(data_dir=tmp_path, embedded_worker=False, reconcile_interval_s=0)
    services = build_services(settings)
    try:
        (tmp_path / PEPPER_FILE).unlink()  # as an install from before the generated pepper
        _, key = create_key(services.tenants, "t", "")
    finally:
        services.close()
    again = build_services(settings)
    try:
        assert again.pepper == "" and again.authenticator.authenticate(key)
    finally:
        again.close()


def test_the_worker_command_refuses_to_start_with_a_placeholder_pepper(monkeypatch: pytest.MonkeyPatch):
    from typer.testing import CliRunner

    from cli import app

    monkeypatch.setenv("ECHO4D_BROKER_URL", "redis://127.0.0.1:6379/15")
    monkeypatch.setenv("ECHO4D_API_KEY_PEPPER", "change-me-in-production")
    result = CliRunner().invoke(app, ["worker"])
    assert result.exit_code == 2 and "refusing to start" in result.output
