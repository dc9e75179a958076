"""Hostile HTTP against a live server (uvicorn on loopback, embedded app, no worker).

- schemathesis against the app's OpenAPI document (checked equal to the one the live server serves):
  positive and negative cases for every operation; no 5xx, status codes, media types, headers and bodies as
  documented. Excluded: ``positive_data_acceptance`` (schema-valid bodies the API refuses on semantics:
  a multipart ``file`` that is the text "null", an unknown cursor, a STOW-RS body that is not
  multipart/related; the refusals are 4xx problems, as they should be).
- Raw-socket upload attacks: wrong Content-Type, truncated multipart, huge and numerous headers, an
  oversized body (declared or chunked), non-UTF-8 and path-like file names. Each gets a 4xx (or a closed
  connection for a truncated body), nothing is stored, and the server keeps serving.
"""

from __future__ import annotations

import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from reliability_kit import LiveServer
from schemathesis.checks import positive_data_acceptance
from service_testkit import embedded_settings, study_zip_bytes

from service.app import create_app

MAX_UPLOAD = 256 * 1024
_SCHEMA_SETTINGS = embedded_settings(Path(tempfile.gettempdir()), max_upload_bytes=MAX_UPLOAD)
OPENAPI = create_app(_SCHEMA_SETTINGS).openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


@schemathesis.serializer("multipart/related")
def _related_body(ctx: Any, value: Any) -> bytes:
    """STOW-RS bodies as generated (a binary string): sent as they are, refused by the route with a 4xx."""
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from service.auth import create_key
    from service.context import build_services

    st = embedded_settings(tmp_path_factory.mktemp("http-var"), max_upload_bytes=MAX_UPLOAD)
    services = build_services(st)
    _, key = create_key(services.tenants, "fuzz", services.pepper)
    try:
        with LiveServer(create_app(st, services=services)) as server:
            yield {"url": server.url, "port": server.port, "key": key, "services": services}
    finally:
        services.close()


def test_the_fuzzed_schema_is_the_live_one(live: dict[str, Any]):
    assert httpx.get(live["url"] + "/openapi.json").json() == OPENAPI
    errors = OPENAPI["paths"]["/v1/jobs/{job_id}"]["get"]["responses"]
    assert set(errors["404"]["content"]) == {"application/problem+json"}


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_schemathesis_no_5xx_and_responses_match_the_schema(case: Any, live: dict[str, Any]):
    case.call_and_validate(base_url=live["url"], headers={"Authorization": f"Bearer {live['key']}"},
                           excluded_checks=[positive_data_acceptance])


# ----------------------------------------------------------------------------- raw HTTP attacks
def raw_http(port: int, head: bytes, body: bytes = b"", *, close_write: bool = False,
             timeout: float = 15.0) -> tuple[int, dict[str, str], bytes] | None:
    """Send bytes as they are; returns (status, headers, body), or None if the server closed without answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(head + body)
            if close_write:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (413) and closed; read what it said
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
                if b"\r\n\r\n" in data:
                    h, _, rest = data.partition(b"\r\n\r\n")
                    m = re.search(rb"content-length:\s*(\d+)", h, re.I)
                    if m and len(rest) >= int(m.group(1)):
                        break
        except (ConnectionResetError, TimeoutError):
            pass
    if not data:
        return None
    h, _, rest = data.partition(b"\r\n\r\n")
    lines = h.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    return status, headers, rest


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def multipart_body(filename: bytes, content: bytes, boundary: str = "Xb0und") -> bytes:
    return (f"--{boundary}\r\n".encode() + b'Content-Disposition: form-data; name="file"; filename="' + filename
            + b'"\r\nContent-Type: application/zip\r\n\r\n' + content + f"\r\n--{boundary}--\r\n".encode())


@pytest.fixture()
def attack(live: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The live server, and after the test: still healthy, no 5xx ever answered, nothing half-stored."""
    yield live
    assert httpx.get(live["url"] + "/healthz", timeout=10).status_code == 200
    metrics = httpx.get(live["url"] + "/metrics").text
    assert not re.search(r'echo4d_http_requests_total\{[^}]*status="5\d\d"', metrics), "a 5xx was answered"
    store = live["services"].store
    for key in store.list_keys("inputs/"):
        job_id = key.split("/")[1]
        assert live["services"].jobs.get(job_id) is not None, f"inputs without a job: {key}"


def _auth(live: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {live['key']}"}


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "application/zip",
                                   'multipart/related; type="application/dicom"; boundary=x', ""])
def test_wrong_content_type_is_415(attack: dict[str, Any], ctype: str):
    body = b'{"file": "study.zip"}'
    headers = {**_auth(attack), "Content-Length": str(len(body))} | ({"Content-Type": ctype} if ctype else {})
    answer = raw_http(attack["port"], request_head("POST", "/v1/studies", headers), body)
    assert answer is not None and answer[0] == 415 and answer[1]["content-type"] == "application/problem+json"


@pytest.mark.parametrize("cut", ["no closing boundary", "declared longer than sent", "garbage after boundary"])
def test_truncated_multipart_is_refused(attack: dict[str, Any], cut: str):
    full = multipart_body(b"study.zip", study_zip_bytes(seed=41))
    headers = {**_auth(attack), "Content-Type": "multipart/form-data; boundary=Xb0und"}
    if cut == "no closing boundary":
        body = full[: len(full) - 12]
        answer = raw_http(attack["port"], request_head("POST", "/v1/studies", headers | {
            "Content-Length": str(len(body))}), body)
        assert answer is not None and 400 <= answer[0] < 500, answer
    elif cut == "declared longer than sent":  # the client vanishes mid-body
        body = full[: len(full) // 2]
        answer = raw_http(attack["port"], request_head("POST", "/v1/studies", headers | {
            "Content-Length": str(len(full))}), body, close_write=True, timeout=20)
        assert answer is None or 400 <= answer[0] < 500, answer
    else:
        body = full.replace(b"--Xb0und--", b"--Xb0und\r\n\xff\xfe\x00garbage")
        answer = raw_http(attack["port"], request_head("POST", "/v1/studies", headers | {
            "Content-Length": str(len(body))}), body)
        assert answer is not None and 400 <= answer[0] < 500, answer
    print(f"FIGURE truncated-multipart {cut}: {answer[0] if answer else 'connection closed'}")
    assert attack["services"].jobs.counts_by_status()["queued"] == 0


@pytest.mark.parametrize("shape", ["one 1 MiB header", "20000 headers", "1 MiB request line"])
def test_huge_headers_are_refused(attack: dict[str, Any], shape: str):
    """h11 buffers at most ``max_incomplete_event_size`` (16 KiB) of an unfinished head beyond one socket read:
    a head that does not fit is refused with 431/400 (or the connection is closed) before it is all in memory."""
    if shape == "one 1 MiB header":
        head = request_head("GET", "/v1/jobs", {**_auth(attack), "X-Padding": "a" * 1024 * 1024})
    elif shape == "20000 headers":
        head = request_head("GET", "/v1/jobs", {**_auth(attack), **{f"X-H{i}": "v" * 40 for i in range(20000)}})
    else:
        head = request_head("GET", "/v1/jobs?cursor=" + "c" * 1024 * 1024, _auth(attack))
    answer = raw_http(attack["port"], head)
    assert answer is None or answer[0] in (400, 413, 414, 431), answer
    print(f"FIGURE huge-headers {shape}: {answer[0] if answer else 'connection closed'}")


def test_oversized_body_is_413_declared_or_streamed(attack: dict[str, Any]):
    headers = {**_auth(attack), "Content-Type": "multipart/form-data; boundary=Xb0und"}
    # declared: refused from the Content-Length alone, before a byte of the body is read
    answer = raw_http(attack["port"], request_head("POST", "/v1/studies", headers | {
        "Content-Length": str(10 * MAX_UPLOAD)}), b"", close_write=True)
    assert answer is not None and answer[0] == 413 and b"payload_too_large" in answer[2]
    # streamed: a valid multipart body sent chunked (no length), cut off once past the limit
    full = multipart_body(b"study.zip", b"x" * (2 * MAX_UPLOAD))
    body = b"".join(b"%x\r\n" % len(c) + c + b"\r\n" for c in (full[i:i + 65536]
                                                                 for i in range(0, len(full), 65536))) + b"0\r\n\r\n"
    answer = raw_http(attack["port"], request_head("POST", "/v1/studies", headers | {
        "Transfer-Encoding": "chunked"}), body)
    assert answer is not None and answer[0] == 413 and b"payload_too_large" in answer[2]


@pytest.mark.parametrize("name", [b"\xff\xfe\x80\x81.zip", b"caf\xe9.zip", b"../../../etc/passwd.zip",
                                  b"/abs/olute.zip", b"a\x00b.zip", "名前.zip".encode()])
def test_odd_file_names_never_reach_keys_and_never_crash(attack: dict[str, Any], name: bytes):
    body = multipart_body(name, study_zip_bytes(seed=42))
    headers = {**_auth(attack), "Content-Type": "multipart/form-data; boundary=Xb0und",
               "Content-Length": str(len(body))}
    answer = raw_http(attack["port"], request_head("POST", "/v1/studies", headers), body)
    assert answer is not None and answer[0] in (202, 400, 422), answer
    print(f"FIGURE odd-name {name!r}: {answer[0]}")
    keys = attack["services"].store.list_keys("inputs/")
    assert all(re.fullmatch(r"inputs/[0-9a-f-]{36}/[A-Za-z0-9._/-]+", k) for k in keys), keys
    assert not any("passwd" in k or "abs" in k for k in keys)
