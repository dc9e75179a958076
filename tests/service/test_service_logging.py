"""Structured JSON logs without API keys or patient values; the API imports without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from service_testkit import ApiHarness

from service.config import Settings
from service.logging import configure_logging

ROOT = Path(__file__).resolve().parents[2]
KEY = "e4d_AbCdEfGhIj_" + "s3cr3t" * 8


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_log_lines_are_json_with_secrets_redacted(capfd: pytest.CaptureFixture[str]):
    configure_logging(Settings(log_json=True))
    structlog.get_logger("t").info("hello", api_key=KEY, authorization=f"Bearer {KEY}",
                                   note=f"client sent {KEY}", patient_name="DOE^JANE", job_id="j1")
    import logging

    logging.getLogger("third.party").warning("key in a stdlib message: %s", KEY)
    lines = _lines(capfd.readouterr().err)
    assert [line["msg"] for line in lines][-2:] == ["hello", f"key in a stdlib message: {KEY}".replace(
        KEY, "e4d_[redacted]")]
    first = lines[-2]
    assert first["api_key"] == first["authorization"] == first["patient_name"] == "[redacted]"
    assert first["job_id"] == "j1" and first["level"] == "info" and "timestamp" in first
    assert KEY not in json.dumps(lines) and "DOE^JANE" not in json.dumps(lines)


def test_request_logs_never_hold_the_key_or_the_query(api: ApiHarness, capfd: pytest.CaptureFixture[str]):
    capfd.readouterr()
    api.client.get("/v1/jobs", params={"created_after": "2020-01-01T00:00:00", "note": "DOE^JANE"},
                   headers=api.auth())
    api.client.get("/v1/jobs", headers={"Authorization": f"Bearer {KEY}"})
    out = capfd.readouterr().err
    access = [line for line in _lines(out) if line["msg"] == "request"]
    assert [a["status"] for a in access] == [200, 401]
    assert all(a["route"] == "/v1/jobs" and a["request_id"] for a in access)
    assert api.key not in out and KEY not in out and "DOE" not in out


def test_api_and_worker_modules_import_without_torch():
    code = ("import sys; import service.app, service.cli, service.cli.bench_api, worker.tasks, worker.pipeline, "
            "worker.reconciler, worker.worker_main; assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
