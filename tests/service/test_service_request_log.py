"""The API's request log lines: route template, status and request id; never the key or the query."""

from __future__ import annotations

import pytest
from service_testkit import ApiHarness, log_lines

KEY = "e4d_AbCdEfGhIj_" + "s3cr3t" * 8


def test_request_logs_never_hold_the_key_or_the_query(api: ApiHarness, capfd: pytest.CaptureFixture[str]):
    capfd.readouterr()
    api.client.get("/v1/jobs", params={"created_after": "2020-01-01T00:00:00", "note": "DOE^JANE"},
                   headers=api.auth())
    api.client.get("/v1/jobs", headers={"Authorization": f"Bearer {KEY}"})
    out = capfd.readouterr().err
    access = [line for line in log_lines(out) if line["msg"] == "request"]
    assert [a["status"] for a in access] == [200, 401]
    assert all(a["route"] == "/v1/jobs" and a["request_id"] for a in access)
    assert api.key not in out and KEY not in out and "DOE" not in out
