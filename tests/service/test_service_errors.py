"""Every error leaves the API as RFC 9457 problem+json with a stable code, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_testkit import ApiHarness, embedded_settings

from jobcore.errors import PlatformCode, TransientError
from models.errors import ErrorCode, InputError, ModelError
from service.app import create_app
from service.context import build_services
from service.errors import http_status_of

PROBLEM_KEYS = {"type", "title", "status", "detail", "code"}


def _assert_problem(r, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status and body["code"] == code
    assert body["type"] == f"urn:echo4d:problem:{code}"
    assert "Traceback" not in r.text
    return body


def test_unknown_route_and_wrong_method(api: ApiHarness):
    _assert_problem(api.client.get("/v2/nothing"), 404, "not_found")
    _assert_problem(api.client.put("/v1/jobs", headers=api.auth()), 405, "validation_failed")


def test_query_validation_names_the_field(api: ApiHarness):
    body = _assert_problem(api.client.get("/v1/jobs", params={"limit": 0}, headers=api.auth()), 422,
                           "validation_failed")
    assert body["field"] == "limit"
    assert body["errors"][0]["loc"] == ["query", "limit"]
    body = _assert_problem(api.client.get("/v1/jobs", params={"status": "exploded"}, headers=api.auth()), 422,
                           "validation_failed")
    assert "exploded" not in str(body["errors"])  # offending input values are not echoed


def test_bad_idempotency_key(api: ApiHarness, make_study_zip):
    r = api.post_study(make_study_zip(), headers={"Idempotency-Key": "x" * 300})
    assert _assert_problem(r, 422, "validation_failed")["field"] == "Idempotency-Key"


def test_chunked_body_over_limit_is_413(tmp_data_dir: Path, api_factory, make_study_zip):
    h = api_factory(embedded_settings(tmp_data_dir, max_upload_bytes=2048))

    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"x" * 1024

    headers = {**h.auth(), "Content-Type": "multipart/form-data; boundary=zzz"}
    _assert_problem(h.client.post("/v1/studies", content=chunks(), headers=headers), 413, "payload_too_large")


@pytest.fixture()
def crashing_client(tmp_data_dir: Path) -> Iterator[TestClient]:
    settings = embedded_settings(tmp_data_dir)
    services = build_services(settings)
    app = create_app(settings, services=services)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    @app.get("/transient")
    def transient() -> None:
        raise TransientError("the object store is unreachable", code=PlatformCode.STORE_UNAVAILABLE)

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    services.close()


def test_unexpected_exception_is_500_problem_without_details(crashing_client: TestClient):
    r = crashing_client.get("/boom")
    _assert_problem(r, 500, "internal_error")
    assert "passwd" not in r.text and "RuntimeError" not in r.text


def test_transient_error_is_503_with_retry_after(crashing_client: TestClient):
    r = crashing_client.get("/transient")
    _assert_problem(r, 503, "store_unavailable")
    assert r.headers["retry-after"]


@pytest.mark.parametrize(("exc", "status"), [
    (InputError("x"), 422), (InputError("x", code=ErrorCode.TOO_LARGE), 413), (ModelError("x"), 500),
    (TransientError("x"), 503),
])
def test_status_of_error_families(exc, status: int):
    assert http_status_of(exc) == status


def test_openapi_documents_the_api_with_examples(api: ApiHarness):
    doc = api.client.get("/openapi.json").json()
    paths = doc["paths"]
    for path in ("/v1/studies", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/artifacts/{name}",
                 "/v1/dicomweb/studies", "/healthz", "/readyz", "/metrics"):
        assert path in paths, path
    assert "examples" in doc["components"]["schemas"]["JobOut"]
    assert "examples" in doc["components"]["schemas"]["Problem"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(doc["components"]["securitySchemes"])


def test_openapi_profile_is_an_enum_stow_has_a_body_and_no_unused_schemas(tmp_path):
    """Issue #15: `profile` was a free string, STOW-RS had no request body, HTTPValidationError was unused."""
    from service_testkit import embedded_settings

    from models.profiles import PROFILES
    from service.app import create_app

    doc = create_app(embedded_settings(tmp_path)).openapi()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    assert "HTTPValidationError" not in str(doc)
    stow = doc["paths"]["/v1/dicomweb/studies"]["post"]
    assert "multipart/related" in next(iter(stow["requestBody"]["content"]))
    profile_q = next(p for p in stow["parameters"] if p["name"] == "profile")
    assert all(p in str(profile_q["schema"]) for p in PROFILES) and "enum" in str(profile_q["schema"])
    form_ref = doc["paths"]["/v1/studies"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    form = doc["components"]["schemas"][form_ref.rsplit("/", 1)[1]]
    assert "enum" in str(form["properties"]["profile"])
