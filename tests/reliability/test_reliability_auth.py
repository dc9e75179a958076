"""Authentication and tenant isolation over HTTP, on every route that takes a key.

Missing, malformed, unknown, wrong-secret and revoked keys are 401 problem+json everywhere; a tenant
reading, listing, cancelling or downloading another tenant's job gets exactly what it gets for a job that
does not exist (404, same body); keys never reach a log line; keys are checked with hmac.compare_digest.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability_kit import job_row
from service_testkit import ApiHarness, embedded_settings, study_zip_bytes, worker_context

from worker.runner import Outcome, run_job

ROUTES = [("POST", "/v1/studies"), ("POST", "/v1/dicomweb/studies"), ("GET", "/v1/jobs"),
          ("GET", "/v1/jobs/{job}"), ("POST", "/v1/jobs/{job}/cancel"), ("DELETE", "/v1/jobs/{job}"),
          ("GET", "/v1/jobs/{job}/artifacts/mesh.glb")]


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory, smoke_prior: Path) -> Iterator[dict[str, Any]]:
    """Tenant A with a succeeded and a queued job, tenant B, and a revoked key of tenant A (built once)."""
    import torch
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.auth import create_key
    from service.context import build_services

    settings = embedded_settings(tmp_path_factory.mktemp("auth-var"), prior_checkpoint=smoke_prior, device="cpu")
    services = build_services(settings)
    _, key_a = create_key(services.tenants, "t1", services.pepper)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with TestClient(create_app(settings, services=services), raise_server_exceptions=False) as client:
            api = ApiHarness(client, services, key_a)
            key_b = api.new_key("tenant-b")
            revoked = api.new_key("t1")
            assert services.tenants.revoke_key(revoked.split("_")[1])
            done = api.post_study(study_zip_bytes(views=("A4C", "A2C"), n_frames=8, seed=31),
                                  data={"profile": "smoke"}, headers={"Idempotency-Key": "shared-key"}).json()["id"]
            assert run_job(worker_context(services), done) is Outcome.SUCCEEDED
            queued = api.post_study(study_zip_bytes(seed=32)).json()["id"]
            yield {"api": api, "a": key_a, "b": key_b, "revoked": revoked, "done": done, "queued": queued}
    finally:
        torch.set_num_threads(threads)
        services.close()


def _call(api: ApiHarness, method: str, path: str, headers: dict[str, Any]) -> Any:
    if method == "POST" and path == "/v1/studies":
        return api.client.post(path, headers=headers, files={"file": ("s.zip", study_zip_bytes(), "application/zip")})
    if method == "POST":
        return api.client.post(path, headers={**headers, "Content-Type": 'multipart/related; type="application/dicom";'
                                              ' boundary=x'}, content=b"--x--\r\n")
    return api.client.request(method, path, headers=headers)


def _bad_keys(t: dict[str, Any]) -> dict[str, dict[str, Any]]:
    key_id = t["a"].split("_")[1]
    return {
        "missing": {},
        "empty bearer": {"Authorization": "Bearer "},
        "not bearer": {"Authorization": f"Basic {t['a']}"},
        "garbage": {"Authorization": "Bearer " + "x" * 300},
        "unknown id": {"Authorization": f"Bearer e4d_{secrets.token_hex(5)}_{secrets.token_urlsafe(32)}"},
        "wrong secret": {"Authorization": f"Bearer e4d_{key_id}_{secrets.token_urlsafe(32)}"},
        "revoked": {"Authorization": f"Bearer {t['revoked']}"},
        "revoked x-api-key": {"X-API-Key": t["revoked"]},
        "non-ascii": {"X-API-Key": "e4d_ключ_секрет".encode()},  # raw UTF-8 bytes in a header
    }


@pytest.mark.slow
def test_every_route_refuses_missing_invalid_and_revoked_keys(tenants: dict[str, Any]):
    api: ApiHarness = tenants["api"]
    for method, template in ROUTES:
        path = template.format(job=tenants["done"])
        for why, headers in _bad_keys(tenants).items():
            r = _call(api, method, path, headers)
            assert r.status_code == 401, (method, path, why, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json" and r.json()["code"] == "unauthorized"
            assert r.headers["www-authenticate"].startswith("Bearer")
    assert job_row(api.services, tenants["done"]).status == "succeeded"  # nothing was changed by any of them


@pytest.mark.slow
def test_another_tenants_job_is_indistinguishable_from_a_missing_one(tenants: dict[str, Any]):
    api: ApiHarness = tenants["api"]
    b = api.auth(tenants["b"])
    missing = str(uuid.uuid4())
    for job in (tenants["done"], tenants["queued"]):
        for method, template in ROUTES[3:]:
            mine = api.client.request(method, template.format(job=job), headers=b)
            none = api.client.request(method, template.format(job=missing), headers=b)
            assert mine.status_code == none.status_code == 404, (method, template, mine.text)
            strip = ({k: v for k, v in r.json().items() if k != "instance"} for r in (mine, none))
            assert next(strip) == next(strip)  # same problem body: no existence oracle
    listing = api.client.get("/v1/jobs", headers=b).json()
    assert listing["items"] == [] and listing["next_cursor"] is None
    listing_a = {j["id"] for j in api.client.get("/v1/jobs", headers=api.auth()).json()["items"]}
    assert {tenants["done"], tenants["queued"]} <= listing_a
    # B's cancel did nothing, A's artifacts are intact, and A can still cancel its own queued job
    assert job_row(api.services, tenants["queued"]).status == "queued"
    assert not job_row(api.services, tenants["queued"]).cancel_requested
    assert api.client.get(f"/v1/jobs/{tenants['done']}/artifacts/mesh.glb", headers=api.auth()).status_code == 200
    assert api.client.post(f"/v1/jobs/{tenants['queued']}/cancel", headers=api.auth()).status_code == 200
    # Idempotency-Keys are per tenant: B reusing A's key with A's body gets its own job, not A's
    body = study_zip_bytes(views=("A4C", "A2C"), n_frames=8, seed=31)
    r = api.post_study(body, key=tenants["b"], data={"profile": "smoke"}, headers={"Idempotency-Key": "shared-key"})
    assert r.status_code == 202 and r.json()["id"] != tenants["done"] and "idempotent-replayed" not in r.headers


@pytest.mark.slow
def test_keys_never_reach_the_logs(tenants: dict[str, Any], capfd: pytest.CaptureFixture[str],
                                   caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    api: ApiHarness = tenants["api"]
    secrets_seen = [tenants["a"], tenants["b"], tenants["revoked"]]
    for key in secrets_seen:
        for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}, {"Authorization": f"Bearer {key}x"}):
            for method, template in ROUTES:
                _call(api, method, template.format(job=tenants["done"]), headers)
            api.client.get(f"/v1/jobs?cursor={key}", headers=headers)  # a key pasted into a query string
    out, err = capfd.readouterr()
    text = out + err + caplog.text
    assert "request" in text  # the request log was captured at all
    for key in secrets_seen:
        assert key not in text and key.split("_", 2)[2] not in text
    logging.getLogger("service.test").info("probe %s", tenants["a"])  # plain stdlib logging is scrubbed too
    _, err = capfd.readouterr()
    assert "probe e4d_[redacted]" in err and tenants["a"] not in err


def test_key_check_is_constant_time(tenants: dict[str, Any], monkeypatch: pytest.MonkeyPatch):
    """Every presented key, known id or not, goes through hmac.compare_digest (and nothing else compares)."""
    from service.auth import Authenticator

    source = inspect.getsource(Authenticator._verify)
    assert "hmac.compare_digest(" in source and "key_hash ==" not in source and "== stored" not in source
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("service.auth.hmac.compare_digest", spy)
    api: ApiHarness = tenants["api"]
    bad = _bad_keys(tenants)
    presented = [bad["unknown id"], bad["wrong secret"], bad["revoked"], api.auth(), bad["garbage"]]
    for headers in presented:
        api.client.get("/v1/jobs", headers=headers)
    assert len(calls) == len(presented)
    assert all(len(a) == len(b) == 64 for a, b in calls)  # equal-length digests, whatever was presented
