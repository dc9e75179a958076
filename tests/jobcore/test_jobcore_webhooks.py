"""Completion webhooks: HMAC signature, delivery from the outbox, retries with backoff, SSRF guard."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from service_testkit import embedded_settings

from jobcore.db.models import JobStatus, utcnow
from jobcore.webhooks import SIGNATURE_HEADER, signature_header, verify_signature

SECRET = "whsec-test"


class Receiver:
    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k: v for k, v in self.headers.items()}, body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_signature_roundtrip_and_tamper():
    body = b'{"a":1}'
    header = signature_header(SECRET, body)
    assert verify_signature(SECRET, header, body)
    assert not verify_signature(SECRET, header, body + b" ")
    assert not verify_signature("other", header, body)
    old = signature_header(SECRET, body, timestamp=int(time.time()) - 3600)
    assert not verify_signature(SECRET, old, body)


def _finish(api, job_id: str, status: JobStatus = JobStatus.SUCCEEDED) -> None:
    now = utcnow()
    claim = api.services.jobs.claim(job_id, "w", now, now - timedelta(seconds=60))
    assert claim is not None and api.services.jobs.finish(claim, status, artifacts={})


def test_delivery_is_signed_and_retried_until_success(api_factory, tmp_data_dir: Path, receiver: Receiver,
                                                      make_study_zip):
    from jobcore.webhooks import WebhookSender

    api = api_factory(embedded_settings(tmp_data_dir, webhook_secret=SECRET, webhook_allow_private=True))
    job_id = api.post_study(make_study_zip(), data={"callback_url": receiver.url}).json()["id"]
    _finish(api, job_id)
    sender = WebhookSender(api.services.settings, api.services.jobs, api.services.metrics)
    receiver.statuses = [500]
    assert sender.deliver_due() == 1
    job = api.services.jobs.get(job_id)
    assert job is not None and job.webhook_state == "pending" and job.webhook_attempts == 1
    assert job.webhook_next_at is not None and job.webhook_next_at > utcnow()
    view = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()  # what an operator reads meanwhile
    assert view["webhook"] == "pending"
    delivery = view["webhook_delivery"]
    assert (delivery["state"], delivery["attempts"], delivery["last_error"]) == ("pending", 1, "HTTP 500")
    assert datetime.fromisoformat(delivery["next_attempt_at"]) == job.webhook_next_at
    assert sender.deliver_due() == 0  # not due yet: backoff
    assert sender.deliver_due(utcnow() + timedelta(seconds=30)) == 1
    assert api.services.jobs.get(job_id).webhook_state == "delivered"  # type: ignore[union-attr]
    headers, body = receiver.received[-1]
    assert verify_signature(SECRET, headers[SIGNATURE_HEADER], body)
    payload = json.loads(body)
    assert payload["type"] == "job.finished" and payload["job"]["id"] == job_id
    assert headers["Echo4D-Event-Id"] == f"{job_id}.succeeded"
    view = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
    assert view["webhook"] == "delivered"
    assert view["webhook_delivery"] == {"state": "delivered", "attempts": 2, "next_attempt_at": None,
                                        "last_error": None}


def test_gives_up_after_max_attempts(api_factory, tmp_data_dir: Path, receiver: Receiver, make_study_zip):
    from jobcore.webhooks import WebhookSender

    api = api_factory(embedded_settings(tmp_data_dir, webhook_secret=SECRET, webhook_allow_private=True,
                                        webhook_max_attempts=2))
    job_id = api.post_study(make_study_zip(), data={"callback_url": receiver.url}).json()["id"]
    _finish(api, job_id, JobStatus.FAILED)
    receiver.statuses = [503, 503]
    sender = WebhookSender(api.services.settings, api.services.jobs, api.services.metrics)
    far = utcnow() + timedelta(hours=2)
    assert sender.deliver_due(far) == 1
    assert sender.deliver_due(far) == 1
    assert sender.deliver_due(far) == 0
    assert api.services.jobs.get(job_id).webhook_state == "failed"  # type: ignore[union-attr]
    delivery = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()["webhook_delivery"]
    assert delivery == {"state": "failed", "attempts": 2, "next_attempt_at": None, "last_error": "HTTP 503"}


def test_an_unreachable_receiver_is_named_in_the_last_error(api_factory, tmp_data_dir: Path, make_study_zip):
    from service_testkit import free_port

    from jobcore.webhooks import WebhookSender

    api = api_factory(embedded_settings(tmp_data_dir, webhook_secret=SECRET, webhook_allow_private=True))
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    job_id = api.post_study(make_study_zip(), data={"callback_url": url}).json()["id"]
    _finish(api, job_id)
    assert WebhookSender(api.services.settings, api.services.jobs, api.services.metrics).deliver_due() == 1
    delivery = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()["webhook_delivery"]
    assert delivery["state"] == "pending" and delivery["attempts"] == 1
    assert delivery["last_error"] == "unreachable (ConnectError)" and delivery["next_attempt_at"] is not None


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://localhost/x", "http://10.0.0.5/x",
                                 "http://[::1]/x", "ftp://example.org/x", "http://user:pw@example.org/x"])
def test_private_or_odd_callback_urls_are_refused(api_factory, tmp_data_dir: Path, url: str, make_study_zip):
    api = api_factory(embedded_settings(tmp_data_dir, webhook_secret=SECRET))
    r = api.post_study(make_study_zip(), data={"callback_url": url})
    assert r.status_code == 422 and r.json()["field"] == "callback_url"


@pytest.mark.parametrize("url", ["http://2130706433:8080/x", "http://0177.0.0.1:8080/x", "http://127.1:8080/x",
                                 "http://0x7f000001:8080/x", "http://0x7f.1/x", "http://017700000001/x",
                                 "http://10.1/x", "http://[::ffff:127.0.0.1]/x"])
def test_numeric_spellings_of_private_hosts_are_refused_at_submission(api_factory, tmp_data_dir: Path, url: str,
                                                                      make_study_zip):
    """Before: accepted with 202 (``ipaddress`` reads none of these; resolvers read them all as 127.0.0.1)."""
    api = api_factory(embedded_settings(tmp_data_dir, webhook_secret=SECRET))
    r = api.post_study(make_study_zip(), data={"callback_url": url})
    assert r.status_code == 422 and r.json()["field"] == "callback_url", r.text


def test_numeric_hosts_are_stored_in_canonical_form(api_factory, tmp_data_dir: Path, make_study_zip):
    api = api_factory(embedded_settings(tmp_data_dir, webhook_secret=SECRET, webhook_allow_private=True))
    job_id = api.post_study(make_study_zip(), data={"callback_url": "http://0x7f000001:8080/x?a=1"}).json()["id"]
    assert api.services.jobs.get(job_id).callback_url == "http://127.0.0.1:8080/x?a=1"  # type: ignore[union-attr]


def test_delivery_connects_to_the_address_it_checked(api_factory, tmp_data_dir: Path, receiver: Receiver,
                                                     make_study_zip, monkeypatch: pytest.MonkeyPatch):
    """DNS rebinding: the callback name first resolves to a public address (the check passes), then to
    127.0.0.1 (where the receiver listens). Before: the HTTP client resolved again and posted to 127.0.0.1.
    Now the name is resolved once and the request goes to the checked address (unreachable here)."""
    import socket

    from jobcore.webhooks import WebhookSender

    api = api_factory(embedded_settings(tmp_data_dir, webhook_secret=SECRET, webhook_timeout_s=1.0))
    port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
    job_id = api.post_study(make_study_zip(), data={"callback_url": f"http://rebind.test:{port}/hook"}).json()["id"]
    _finish(api, job_id)
    real = socket.getaddrinfo
    answers = iter(["192.0.2.10", "127.0.0.1", "127.0.0.1"])  # 192.0.2.0/24 is TEST-NET-1: never answers
    lookups: list[str] = []

    def rebinding_dns(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real(host, *args, **kwargs)
        lookups.append(host)
        return real(next(answers), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding_dns)
    monkeypatch.setattr("jobcore.webhooks.is_private_host", lambda h: h == "127.0.0.1")  # TEST-NET counts as public
    sender = WebhookSender(api.services.settings, api.services.jobs, api.services.metrics)
    assert sender.deliver_for(job_id) is None
    assert receiver.received == [] and lookups == ["rebind.test"]


def test_pinned_delivery_keeps_the_host_header(api_factory, tmp_data_dir: Path, receiver: Receiver, make_study_zip):
    from jobcore.webhooks import WebhookSender

    api = api_factory(embedded_settings(tmp_data_dir, webhook_secret=SECRET, webhook_allow_private=True))
    url = receiver.url.replace("127.0.0.1", "localhost")
    job_id = api.post_study(make_study_zip(), data={"callback_url": url}).json()["id"]
    _finish(api, job_id)
    WebhookSender(api.services.settings, api.services.jobs, api.services.metrics).deliver_for(job_id)
    assert len(receiver.received) == 1
    assert receiver.received[0][0]["Host"] == url.split("/")[2]
