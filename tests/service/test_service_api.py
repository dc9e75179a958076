"""The HTTP API on the embedded stack (SQLite + folder store, no worker): submission, jobs, auth, tenants."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from service_testkit import ApiHarness, embedded_settings


def test_submit_bundle_answers_202_with_location_and_queued_job(api: ApiHarness, make_study_zip: Callable[..., bytes]):
    r = api.post_study(make_study_zip(), data={"profile": "smoke"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["status"], job["progress"], job["attempts"], job["profile"]) == ("queued", 0.0, 0, "smoke")
    assert job["links"]["cancel"] == f"/v1/jobs/{job['id']}"
    keys = api.services.store.list_keys(f"inputs/{job['id']}/")
    assert keys == [f"inputs/{job['id']}/study.zip"]


def test_get_job_returns_same_resource(api: ApiHarness, make_study_zip: Callable[..., bytes]):
    job = api.post_study(make_study_zip()).json()
    r = api.client.get(f"/v1/jobs/{job['id']}", headers=api.auth())
    assert r.status_code == 200
    assert r.json()["id"] == job["id"] and r.json()["status"] == "queued"


def test_idempotency_key_replays_same_job_and_rejects_other_body(api: ApiHarness, make_study_zip: Callable[..., bytes]):
    body = make_study_zip()
    first = api.post_study(body, headers={"Idempotency-Key": "pacs-42"})
    again = api.post_study(body, headers={"Idempotency-Key": "pacs-42"})
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = api.post_study(make_study_zip(seed=3), headers={"Idempotency-Key": "pacs-42"})
    assert other.status_code == 409
    assert other.json()["code"] == "conflict"
    page = api.client.get("/v1/jobs", headers=api.auth()).json()
    assert len(page["items"]) == 1
    # only one set of inputs was kept
    assert len(api.services.store.list_keys("inputs/")) == 1


def test_same_idempotency_key_in_two_tenants_gives_two_jobs(api: ApiHarness, make_study_zip: Callable[..., bytes]):
    body = make_study_zip()
    a = api.post_study(body, headers={"Idempotency-Key": "k"}).json()
    b = api.post_study(body, key=api.new_key("t2"), headers={"Idempotency-Key": "k"}).json()
    assert a["id"] != b["id"]


def test_other_tenant_gets_404_on_read_list_cancel_and_download(api: ApiHarness, make_study_zip: Callable[..., bytes]):
    job = api.post_study(make_study_zip()).json()
    other = api.auth(api.new_key("t2"))
    for method, path in (("GET", f"/v1/jobs/{job['id']}"), ("POST", f"/v1/jobs/{job['id']}/cancel"),
                         ("DELETE", f"/v1/jobs/{job['id']}"),
                         ("GET", f"/v1/jobs/{job['id']}/artifacts/mesh.glb")):
        r = api.client.request(method, path, headers=other)
        assert r.status_code == 404, (method, path)
        assert r.json()["code"] == "not_found"
    assert api.client.get("/v1/jobs", headers=other).json()["items"] == []
    assert api.client.get(f"/v1/jobs/{job['id']}", headers=api.auth()).json()["status"] == "queued"


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer e4d_nope_" + "x" * 43}, {"Authorization": "Basic dXNlcjpwdw=="},
    {"X-API-Key": "not-a-key"}, {"Authorization": "Bearer "},
])
def test_missing_or_invalid_key_is_401_problem(api: ApiHarness, headers: dict[str, str]):
    r = api.client.get("/v1/jobs", headers=headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["code"] == "unauthorized"


def test_x_api_key_header_works_and_revoked_key_is_401(api: ApiHarness):
    assert api.client.get("/v1/jobs", headers={"X-API-Key": api.key}).status_code == 200
    from service.auth import parse_key_id

    assert api.services.tenants.revoke_key(parse_key_id(api.key) or "")
    assert api.client.get("/v1/jobs", headers={"X-API-Key": api.key}).status_code == 401


def test_list_filters_and_cursor_pagination(api: ApiHarness, make_study_zip: Callable[..., bytes]):
    ids = [api.post_study(make_study_zip(seed=i)).json()["id"] for i in range(5)]
    cancelled = ids[1]
    assert api.client.post(f"/v1/jobs/{cancelled}/cancel", headers=api.auth()).status_code == 200
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/v1/jobs", params=params, headers=api.auth()).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest first, each exactly once
    only = api.client.get("/v1/jobs", params={"status": "cancelled"}, headers=api.auth()).json()["items"]
    assert [j["id"] for j in only] == [cancelled]
    both = api.client.get("/v1/jobs", params=[("status", "cancelled"), ("status", "queued")], headers=api.auth())
    assert len(both.json()["items"]) == 5
    bad = api.client.get("/v1/jobs", params={"cursor": "garbage!"}, headers=api.auth())
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"


def test_cancel_queued_job_then_repeat_and_it_never_runs(api: ApiHarness, make_study_zip: Callable[..., bytes]):
    job = api.post_study(make_study_zip()).json()
    r = api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=api.auth())
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled" and r.json()["error"]["code"] == "cancelled"
    assert api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=api.auth()).status_code == 200  # idempotent
    from datetime import timedelta

    from jobcore.db.models import utcnow

    now = utcnow()
    assert api.services.jobs.claim(job["id"], "w", now, now - timedelta(seconds=60)) is None
    assert api.services.jobs.next_claimable(now) is None


def test_artifacts_are_404_until_the_job_succeeds(api: ApiHarness, make_study_zip: Callable[..., bytes]):
    job = api.post_study(make_study_zip()).json()
    for name in ("mesh.glb", "report.json", "nonsense"):
        r = api.client.get(f"/v1/jobs/{job['id']}/artifacts/{name}", headers=api.auth())
        assert r.status_code == 404 and r.json()["field"] == "name"


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return buf.getvalue()


@pytest.mark.parametrize(("body", "code"), [
    (b"this is not a zip", "unsupported_format"),
    (_zip({"readme.txt": b"x"}), "invalid_manifest"),
    (_zip({"study.json": b"{not json"}), "invalid_manifest"),
    (_zip({"../evil.txt": b"x", "study.json": b"{}"}), "unsafe_archive"),
    (_zip({"/abs/path.npy": b"x", "study.json": b"{}"}), "unsafe_archive"),
    (_zip({"study.json": b'{"format": "echo4d-study/1", "views": {"A5C": {}}}'}), "unknown_view"),
    (_zip({"study.json": b'{"format": "echo4d-study/1", "views": {"A4C": {"masks": "A4C.npy", '
                          b'"pixel_spacing_mm": [0.7, 0.7], "fps": 30}}}'}), "invalid_study"),
])
def test_bad_bundles_are_422_problems_with_stable_codes(api: ApiHarness, body: bytes, code: str):
    r = api.post_study(body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == code
    assert api.services.store.list_keys("inputs/") == []  # nothing stored for a rejected upload


def test_nan_spacing_is_rejected_up_front(api: ApiHarness, make_study_zip: Callable[..., bytes]):
    body = make_study_zip(views=("A4C",))
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["study.json"] = members["study.json"].replace(b"[1.2, 1.2]", b"[NaN, 1.2]")
    r = api.post_study(_zip(members))
    assert r.status_code == 422 and r.json()["code"] == "bad_spacing"


def test_symlink_member_is_unsafe(api: ApiHarness, make_study_zip: Callable[..., bytes]):
    buf = io.BytesIO(make_study_zip(views=("A4C",)))
    with zipfile.ZipFile(buf, "a") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, "/etc/passwd")
    r = api.post_study(buf.getvalue())
    assert r.status_code == 422 and r.json()["code"] == "unsafe_archive"


def test_zip_bomb_ratio_is_refused(api: ApiHarness, make_study_zip: Callable[..., bytes]):
    bomb = _zip_deflated({"study.json": b"{}", "zeros.bin": b"\0" * (80 * 1024 * 1024)})
    r = api.post_study(bomb)
    assert r.status_code == 422 and r.json()["code"] == "unsafe_archive"


def _zip_deflated(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return buf.getvalue()


def test_files_upload_with_manifest_keeps_client_names_out_of_keys(api: ApiHarness):
    npy = io.BytesIO()
    np.save(npy, np.zeros((3, 8, 8), np.uint8))
    files = [("files", ("SMITH^JOHN_a4c.npy", npy.getvalue(), "application/octet-stream")),
             ("files", ("SMITH^JOHN_a2c.mp4", b"\0\0\0 ftypisom", "video/mp4"))]
    manifest = {"pixel_spacing_mm": [0.5, 0.5], "fps": 30,
                "files": {"SMITH^JOHN_a4c.npy": {"view": "A4C"}, "SMITH^JOHN_a2c.mp4": {"view": "A2C"}}}
    r = api.client.post("/v1/studies", files=files, data={"manifest": json.dumps(manifest)}, headers=api.auth())
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.json()["input_kind"] == "files"
    keys = api.services.store.list_keys(f"inputs/{job_id}/")
    assert sorted(keys) == sorted(f"inputs/{job_id}/{n}" for n in
                                  ("files/0000.npy", "files/0001.mp4", "names.json", "manifest.json"))
    assert not any("SMITH" in k for k in keys)


@pytest.mark.parametrize(("files", "data", "code"), [
    ([("files", ("notes.txt", b"hello", "text/plain"))], {}, "unsupported_format"),
    ([("files", ("a.npy", b"x", "application/octet-stream"))], {"manifest": "[1, 2]"}, "invalid_manifest"),
    ([("files", ("a.npy", b"x", "application/octet-stream"))], {"manifest": "{oops"}, "invalid_manifest"),
    ([("files", ("a.npy", b"x", "application/octet-stream"))], {"profile": "turbo"}, "validation_failed"),
    ([("other", ("a.npy", b"x", "application/octet-stream"))], {}, "validation_failed"),
])
def test_bad_file_submissions(api: ApiHarness, files: list, data: dict[str, str], code: str):
    r = api.client.post("/v1/studies", files=files, data=data, headers=api.auth())
    assert r.status_code == 422, r.text
    assert r.json()["code"] == code


def test_wrong_content_type_is_415(api: ApiHarness):
    r = api.client.post("/v1/studies", json={"file": "x"}, headers=api.auth())
    assert r.status_code == 415 and r.json()["code"] == "unsupported_media_type"


def test_callback_url_needs_a_webhook_secret(api: ApiHarness, make_study_zip: Callable[..., bytes]):
    r = api.post_study(make_study_zip(), data={"callback_url": "https://example.org/hook"})
    assert r.status_code == 422 and r.json()["field"] == "callback_url"


def test_upload_over_the_limit_is_413_problem(api_factory: Callable[..., ApiHarness], tmp_data_dir: Path,
                                             make_study_zip: Callable[..., bytes]):
    small = api_factory(embedded_settings(tmp_data_dir, max_upload_bytes=4096))
    r = small.post_study(make_study_zip() + b"\0" * 8192)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "payload_too_large"


def test_rate_limit_is_429_with_retry_after(api_factory: Callable[..., ApiHarness], tmp_data_dir: Path):
    limited = api_factory(embedded_settings(tmp_data_dir, rate_limit_per_minute=60, rate_limit_burst=3))
    codes = [limited.client.get("/v1/jobs", headers=limited.auth()).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    r = limited.client.get("/v1/jobs", headers=limited.auth())
    assert r.json()["code"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
    other = limited.new_key("t2")  # limits are per key
    assert limited.client.get("/v1/jobs", headers=limited.auth(other)).status_code == 200


def test_metrics_have_process_collectors_route_labels_for_docs_and_no_created_series(api: ApiHarness):
    """Issue #15: process/platform collectors registered; /docs counted under its route; no `_created` series."""
    assert api.client.get("/docs").status_code == 200
    text = api.client.get("/metrics").text
    assert "process_resident_memory_bytes" in text and "python_info" in text
    assert 'route="/docs"' in text and 'route="unmatched"' not in text
    assert "_created" not in text


def test_metrics_can_move_off_the_api_port(api_factory, tmp_data_dir: Path):
    """Issue #15: with ECHO4D_METRICS_PORT, /metrics is not served next to the API (compose and k8s set it)."""
    import httpx
    from service_testkit import free_port

    port = free_port()
    h = api_factory(embedded_settings(tmp_data_dir, metrics_port=port))
    assert h.client.get("/metrics").status_code == 404
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert r.status_code == 200 and "echo4d_http_requests_total" in r.text
