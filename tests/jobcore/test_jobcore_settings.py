"""Settings: the one reader of the environment; every field documented in docs/service.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from jobcore.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "service.md"


def test_defaults_describe_the_embedded_mode(monkeypatch: pytest.MonkeyPatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(f"ECHO4D_{name.upper()}", raising=False)
    s = Settings()
    assert s.embedded and s.host == "127.0.0.1" and s.store_backend == "local"
    assert s.resolved_database_url == "sqlite:///var/echo4d.sqlite3"
    assert s.visibility_timeout_s > s.job_hard_time_limit_s


def test_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ECHO4D_BROKER_URL", "redis://h:6379/0")
    monkeypatch.setenv("ECHO4D_JOB_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("ECHO4D_S3_SECRET_KEY", "hunter2")
    s = Settings()
    assert (s.broker_url, s.job_max_attempts, s.embedded) == ("redis://h:6379/0", 5, False)
    assert "hunter2" not in repr(s)


def test_empty_variables_mean_unset(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ECHO4D_BROKER_URL", "")
    monkeypatch.setenv("ECHO4D_WEBHOOK_SECRET", " ")
    s = Settings()
    assert s.embedded and s.broker_url is None and s.webhook_secret is None


@pytest.mark.parametrize("bad", [
    {"job_soft_time_limit_s": 100, "job_hard_time_limit_s": 50},
    {"job_hard_time_limit_s": 3000, "broker_visibility_timeout_s": 2000},
    {"heartbeat_interval_s": 10, "heartbeat_stale_s": 15},
    {"default_profile": "fast"},
    {"device": "gpu"},
    {"device": "cuda:x"},
])
def test_inconsistent_settings_are_refused(bad: dict[str, object]):
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_every_setting_is_documented():
    text = DOC.read_text()
    rows = set(re.findall(r"^\| `ECHO4D_([A-Z0-9_]+)` \|", text, flags=re.M))
    assert rows == {name.upper() for name in Settings.model_fields}
