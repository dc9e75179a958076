"""Regressions of the hostile review (issue #15), request side: archive bombs, crafted fields and headers,
upload memory, and what happens before authentication.

Embedded API in this process (TestClient; SQLite + folder store, no worker) unless a test needs a real HTTP
parser in front of the app (uvicorn on loopback, raw sockets). Memory figures are the rise of this process's
peak RSS over the call (``peak_rss_mb`` resets the kernel's high-water mark first).
"""

from __future__ import annotations

import base64
import json
import socket
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dicom_kit import dicom_bytes
from hostile_kit import raw_entries_zip, raw_member_zip
from reliability_kit import LiveServer, peak_rss_mb
from service_testkit import ApiHarness, embedded_settings, study_zip_bytes

DATA = Path(__file__).parent / "data"
MB = 1024 * 1024


@pytest.fixture()
def api(api_factory: Callable[..., ApiHarness], tmp_data_dir: Path) -> ApiHarness:
    return api_factory(embedded_settings(tmp_data_dir))


def _problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


# ----------------------------------------------------------------------------- 1, 2: archive bombs
def test_bzip2_manifest_bomb_is_refused_without_inflating(api: ApiHarness):
    """785 bytes of bzip2 that inflate to 1 GiB, stored as study.json declaring 300 bytes (so the ratio check
    passes). Before: the manifest was read through zipfile, which inflates a bzip2 block unbounded (+1 GB RSS)."""
    bomb = (DATA / "zeros_1gib.bz2").read_bytes()
    body = raw_member_zip("study.json", bomb, method=zipfile.ZIP_BZIP2, file_size=300)
    start = time.monotonic()
    r, rise = peak_rss_mb(lambda: api.post_study(body))
    elapsed = time.monotonic() - start
    _problem(r, 422, "unsupported_format")
    print(f"FIGURE bzip2-manifest-bomb: 422 unsupported_format in {elapsed:.2f} s, peak RSS +{rise:.0f} MB")
    assert rise < 64 and elapsed < 5
    assert api.services.store.list_keys("inputs/") == []


def test_bzip2_data_member_is_refused_at_submission(api: ApiHarness):
    body = study_zip_bytes(views=("A4C",), n_frames=4)
    with zipfile.ZipFile(__import__("io").BytesIO(body)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    buf = __import__("io").BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw, compress_type=zipfile.ZIP_BZIP2 if name.endswith(".npy") else zipfile.ZIP_DEFLATED)
    _problem(api.post_study(buf.getvalue()), 422, "unsupported_format")


# ----------------------------------------------------------------------------- 5: crafted fields and headers
def test_deeply_nested_manifest_field_is_a_422(api: ApiHarness):
    files = [("files", ("a.npy", b"\x93NUMPY", "application/octet-stream"))]
    r = api.client.post("/v1/studies", headers=api.auth(), files=files,
                        data={"manifest": "[" * 30000 + "]" * 30000})
    _problem(r, 422, "invalid_manifest")


@pytest.mark.parametrize("cursor", [["2020-01-01T00:00:00", 1], ["2020-01-01T00:00:00+00:00", 1],
                                    ["2020-01-01T00:00:00", "x"], [1, 2], {"a": 1}, "[" * 100])
def test_crafted_cursor_is_a_422(api: ApiHarness, cursor: Any):
    raw = (cursor if isinstance(cursor, str) else json.dumps(cursor)).encode()
    value = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    _problem(api.client.get("/v1/jobs", params={"cursor": value}, headers=api.auth()), 422, "validation_failed")


def test_a_real_cursor_still_pages(api: ApiHarness):
    for seed in range(3):
        assert api.post_study(study_zip_bytes(views=("A4C",), n_frames=4, seed=seed)).status_code == 202
    first = api.client.get("/v1/jobs", params={"limit": 2}, headers=api.auth()).json()
    rest = api.client.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}, headers=api.auth()).json()
    assert len(first["items"]) == 2 and len(rest["items"]) == 1 and rest["next_cursor"] is None


# ----------------------------------------------------------------------------- 6, 7: STOW-RS bodies
def _related(parts: Iterator[bytes] | list[bytes], boundary: bytes = b"B0und") -> Iterator[bytes]:
    for raw in parts:
        yield b"--" + boundary + b"\r\nContent-Type: application/dicom\r\n\r\n" + raw + b"\r\n"
    yield b"--" + boundary + b"--\r\n"


_STOW_TYPE = 'multipart/related; type="application/dicom"; boundary=B0und'


def test_chunked_stow_body_over_the_limit_is_a_413(api_factory: Callable[..., ApiHarness], tmp_data_dir: Path):
    """Sent without a length (chunked), 3 × the limit. Before: the limit's error was swallowed by the multipart
    parser's handler and came back as 422 corrupt_file."""
    h = api_factory(embedded_settings(tmp_data_dir, max_upload_bytes=2 * MB))
    chunk = b"\0" * MB
    r = h.client.post("/v1/dicomweb/studies", content=_related(iter([chunk] * 6)),
                      headers={**h.auth(), "Content-Type": _STOW_TYPE})
    _problem(r, 413, "payload_too_large")


# ----------------------------------------------------------------------------- 13: bounded detail
def test_404_never_echoes_a_long_path(api: ApiHarness):
    job_id = api.post_study(study_zip_bytes(views=("A4C",), n_frames=4)).json()["id"]
    r = api.client.get(f"/v1/jobs/{job_id}/artifacts/{'x' * 5000}", headers=api.auth())
    body = _problem(r, 404, "not_found")
    assert len(r.text) < 1000 and "x" * 300 not in r.text, body


# ----------------------------------------------------------------------------- 4, 11: before the body, auth
@pytest.fixture()
def live(tmp_path: Path) -> Iterator[dict[str, Any]]:
    from service.app import create_app
    from service.auth import create_key
    from service.context import build_services

    st = embedded_settings(tmp_path, body_idle_timeout_s=1.0, auth_failures_per_minute=30, auth_failure_burst=10)
    services = build_services(st)
    _, key = create_key(services.tenants, "t1", services.pepper)
    try:
        with LiveServer(create_app(st, services=services)) as server:
            yield {"port": server.port, "key": key, "services": services, "url": server.url}
    finally:
        services.close()


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def _status_within(port: int, data: bytes, seconds: float) -> int | None:
    """Send ``data`` and keep the connection open; the status line that comes back within ``seconds``, or None."""
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as s:
        s.sendall(data)
        try:
            answer = s.recv(4096)
        except TimeoutError:
            return None
    return int(answer.split()[1]) if answer else None


@pytest.mark.parametrize("path", ["/v1/studies", "/v1/dicomweb/studies"])
def test_no_key_is_401_before_the_body_is_sent(live: dict[str, Any], path: str):
    """The head promises 100 MB and nothing follows. Before: the server waited for the body, then said 401."""
    head = _head(path, {"Content-Type": "multipart/form-data; boundary=X", "Content-Length": str(100 * MB)})
    assert _status_within(live["port"], head, 5) == 401


def test_a_held_upload_is_answered_408(live: dict[str, Any]):
    """Content-Length 300,000,000 with 5 bytes sent, then silence. Before: never answered."""
    head = _head("/v1/studies", {"Authorization": f"Bearer {live['key']}", "Content-Length": "300000000",
                                 "Content-Type": "multipart/form-data; boundary=X"})
    assert _status_within(live["port"], head + b"--X\r\n", 10) == 408


def test_failed_authentications_are_rate_limited_per_key_id_and_address(live: dict[str, Any]):
    """300 rapid wrong secrets for a real key id. Before: 300 × 401, never 429."""
    import httpx

    key_id = live["key"].split("_")[1]
    with httpx.Client(base_url=live["url"]) as client:
        codes = [client.get("/v1/jobs", headers={"Authorization": f"Bearer e4d_{key_id}_wrong{i}"}).status_code
                 for i in range(60)]
        assert set(codes[:10]) == {401} and set(codes[10:]) == {429}, codes
        limited = client.get("/v1/jobs", headers={"Authorization": "Bearer e4d_other_wrong"})
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1  # the address is limited too
    print(f"FIGURE failed-auth: 60 wrong secrets → {codes.count(401)} × 401 then {codes.count(429)} × 429")


def test_a_valid_key_is_not_limited_by_its_own_success(live: dict[str, Any]):
    import httpx

    with httpx.Client(base_url=live["url"], headers={"Authorization": f"Bearer {live['key']}"}) as client:
        assert {client.get("/v1/jobs").status_code for _ in range(30)} == {200}


def _stream_post(live: dict[str, Any], path: str, content_type: str, body: Iterator[bytes]) -> int:
    """POST a body streamed from ``body`` over a raw socket (chunked; the client holds one chunk at a time)."""
    head = _head(path, {"Authorization": f"Bearer {live['key']}", "Content-Type": content_type,
                        "Transfer-Encoding": "chunked"})
    with socket.create_connection(("127.0.0.1", live["port"]), timeout=60) as s:
        s.sendall(head)
        for chunk in body:
            s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        answer = s.recv(4096)
    return int(answer.split()[1])


def _form_files(n: int, size: int, boundary: str) -> Iterator[bytes]:
    for i in range(n):
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{i}.npy"\r\n'
               f"Content-Type: application/octet-stream\r\n\r\n").encode() + b"\0" * size + b"\r\n"
    yield f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("route", ["stow", "form"])
def test_many_parts_are_spooled_to_disk(live: dict[str, Any], route: str):
    """200 parts of 1 MB streamed to a live server. Before: each part stayed in memory up to 1 MiB (STOW-RS and
    Starlette's form parser alike): +200 MB RSS per request. Now at most 4 MiB (STOW-RS) or 200 x 16 KiB (form)."""
    if route == "stow":
        call = lambda: _stream_post(live, "/v1/dicomweb/studies", _STOW_TYPE,  # noqa: E731
                                    _related(iter([b"\0" * MB] * 200)))
        expected = 409  # none of them is DICOM: each fails with 0xC000
    else:
        call = lambda: _stream_post(live, "/v1/studies", "multipart/form-data; boundary=F0rm",  # noqa: E731
                                    _form_files(200, MB, "F0rm"))
        expected = 202
    status, rise = peak_rss_mb(call)
    print(f"FIGURE {route}-200-parts-of-1MB: {status}, peak RSS +{rise:.0f} MB")
    assert status == expected
    assert rise < 60


def test_central_directory_of_a_million_entries_is_refused_from_its_end_record(live: dict[str, Any]):
    """1,000,000 empty members (84 MB) streamed to a live server. Before: zipfile built a ZipInfo per entry
    before the count was checked (+0.5 GB RSS, seconds)."""
    body = raw_entries_zip(1_000_000)
    head = (b'--F0rm\r\nContent-Disposition: form-data; name="file"; filename="s.zip"\r\n'
            b"Content-Type: application/zip\r\n\r\n")
    chunks = [head, *(body[i:i + MB] for i in range(0, len(body), MB)), b"\r\n--F0rm--\r\n"]
    start = time.monotonic()
    status, rise = peak_rss_mb(lambda: _stream_post(live, "/v1/studies", "multipart/form-data; boundary=F0rm",
                                                    iter(chunks)))
    elapsed = time.monotonic() - start
    print(f"FIGURE million-entry-zip ({len(body) / MB:.0f} MB): {status} in {elapsed:.2f} s, peak RSS +{rise:.0f} MB")
    assert status == 422
    assert rise < 64


# ----------------------------------------------------------------------------- 5: fuzz, no 5xx
def test_fuzzed_queries_headers_and_fields_never_answer_5xx(api: ApiHarness):
    """Hostile values in every query parameter, header and form field the API reads: 4xx or 2xx, never 5xx."""
    hostile = ["[" * 30000 + "]" * 30000, "9" * 5000, "-1", "\x00", "%00", "é" * 300, "null", "{}", "1e309",
               base64.urlsafe_b64encode(b'["2020-01-01T00:00:00", 1]').decode(), "A" * 8000, "../../etc/passwd"]
    job_id = api.post_study(study_zip_bytes(views=("A4C",), n_frames=4)).json()["id"]
    seen: dict[int, int] = {}

    def record(r: Any) -> None:
        assert r.status_code < 500, (r.request.method, str(r.request.url)[:200], r.text[:300])
        seen[r.status_code] = seen.get(r.status_code, 0) + 1

    for v in hostile:
        for param in ("cursor", "limit", "status", "created_after", "created_before"):
            record(api.client.get("/v1/jobs", params={param: v[:1000]}, headers=api.auth()))
        header_value = v.encode()[:4000]  # raw bytes: non-ASCII and control characters as a client could send
        for header in ("Range", "If-Range", "If-None-Match", "Idempotency-Key", "X-Request-ID"):
            record(api.client.get(f"/v1/jobs/{job_id}/artifacts/report.json",
                                  headers={**api.auth(), header: header_value}))
        record(api.client.get("/v1/jobs", headers={"Authorization": b"Bearer " + header_value}))
        for field in ("manifest", "profile", "callback_url"):
            record(api.client.post("/v1/studies", headers=api.auth(), data={field: v},
                                   files=[("files", ("a.npy", b"\x93NUMPY", "application/octet-stream"))]))
        record(api.client.post("/v1/dicomweb/studies", params={"profile": v[:1000]}, content=b"x",
                               headers={**api.auth(), "Content-Type": _STOW_TYPE}))
    print(f"FIGURE fuzz: {sum(seen.values())} requests, statuses {dict(sorted(seen.items()))}")


def test_range_with_thousands_of_digits_is_not_a_500():
    from service.api.artifacts import parse_range
    from service.errors import RangeNotSatisfiable

    assert parse_range("bytes=0-" + "9" * 5000, 100) == (0, 99)
    assert parse_range("bytes=-" + "9" * 5000, 100) == (0, 99)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=" + "9" * 5000 + "-", 100)


def test_stow_dicom_still_accepted_after_the_spooling_change(api: ApiHarness):
    import numpy as np

    raw = dicom_bytes(np.zeros((4, 16, 16), np.uint8))
    r = api.client.post("/v1/dicomweb/studies", content=b"".join(_related([raw])),
                        headers={**api.auth(), "Content-Type": _STOW_TYPE})
    assert r.status_code == 200, r.text[:300]


def test_a_slow_download_outlives_the_body_idle_timeout(live: dict[str, Any]):
    """The 408 deadline covers the request body only: a download read slowly for longer than it still completes
    (Starlette waits on receive() for a disconnect while it streams)."""
    import io
    from datetime import timedelta

    import httpx

    from jobcore.db.models import JobStatus, utcnow

    services = live["services"]
    auth = {"Authorization": f"Bearer {live['key']}"}
    body = study_zip_bytes(views=("A4C",), n_frames=4)
    job_id = httpx.post(live["url"] + "/v1/studies", headers=auth,
                        files={"file": ("s.zip", body, "application/zip")}).json()["id"]
    now = utcnow()
    claim = services.jobs.claim(job_id, "w", now, now - timedelta(seconds=60))
    payload = bytes(range(256)) * (32 * 1024)  # 8 MiB
    info = services.store.put_stream(f"outputs/{job_id}/mesh.glb", io.BytesIO(payload), length=len(payload))
    assert services.jobs.finish(claim, JobStatus.SUCCEEDED, artifacts={"mesh.glb": {
        "key": info.key, "etag": info.etag, "content_type": "model/gltf-binary"}})
    received = bytearray()
    with httpx.stream("GET", f"{live['url']}/v1/jobs/{job_id}/artifacts/mesh.glb", headers=auth, timeout=30) as r:
        for chunk in r.iter_bytes(256 * 1024):
            received += chunk
            if len(received) <= 256 * 1024:
                time.sleep(2.5)  # longer than the 1 s body idle timeout of this server
    assert bytes(received) == payload
