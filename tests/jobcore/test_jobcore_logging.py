"""Structured JSON logs without API keys or patient values."""

from __future__ import annotations

import json

import pytest
import structlog
from service_testkit import log_lines

from jobcore.logging import configure_logging
from jobcore.settings import Settings

KEY = "e4d_AbCdEfGhIj_" + "s3cr3t" * 8


def test_log_lines_are_json_with_secrets_redacted(capfd: pytest.CaptureFixture[str]):
    configure_logging(Settings(log_json=True))
    structlog.get_logger("t").info("hello", api_key=KEY, authorization=f"Bearer {KEY}",
                                   note=f"client sent {KEY}", patient_name="DOE^JANE", job_id="j1")
    import logging

    logging.getLogger("third.party").warning("key in a stdlib message: %s", KEY)
    lines = log_lines(capfd.readouterr().err)
    assert [line["msg"] for line in lines][-2:] == ["hello", f"key in a stdlib message: {KEY}".replace(
        KEY, "e4d_[redacted]")]
    first = lines[-2]
    assert first["api_key"] == first["authorization"] == first["patient_name"] == "[redacted]"
    assert first["job_id"] == "j1" and first["level"] == "info" and "timestamp" in first
    assert KEY not in json.dumps(lines) and "DOE^JANE" not in json.dumps(lines)
