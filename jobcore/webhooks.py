"""Completion webhooks: HMAC-signed POSTs, delivered from the job table (an outbox) with retries.

When a job ends with a ``callback_url``, its row gets ``webhook_state = 'pending'``. The worker
tries once right away; the reconciler retries due deliveries with exponential backoff until
``webhook_max_attempts``. Receivers verify::

    Echo4D-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

and de-duplicate on ``Echo4D-Event-Id`` (deliveries are at least once).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
import structlog

from jobcore.addresses import is_private_host
from jobcore.db.jobs import JobRepository
from jobcore.db.models import Job, utcnow
from jobcore.metrics import Metrics
from jobcore.resource import job_out
from jobcore.settings import Settings

log = structlog.get_logger(__name__)
SIGNATURE_HEADER = "Echo4D-Signature"
EVENT_ID_HEADER = "Echo4D-Event-Id"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={sign(secret, t, body)}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance_s: int = 300,
                     now: float | None = None) -> bool:
    """Receiver-side check (also used by the tests): right HMAC and a recent timestamp."""
    try:
        fields = dict(item.split("=", 1) for item in header.split(","))
        t = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, t, body), fields.get("v1", ""))


class Blocked(Exception):
    """The callback host resolves to a private or loopback address."""


def pinned_request(url: str, allow_private: bool) -> tuple[str, dict[str, str], dict[str, str]]:
    """Resolve the callback host ONCE, check every address, and aim the request at the checked one:
    (URL with the IP as host, the Host header, httpx extensions naming the TLS server name). A second
    resolution by the HTTP client could answer differently (DNS rebinding), so there is none.

    Raises :class:`Blocked` for a private address (unless allowed), ``OSError`` when the name does not resolve.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise OSError(f"no address for the callback host ({len(host)} characters)")
    if not allow_private and any(is_private_host(a) for a in addresses):
        raise Blocked()
    ip = sorted(addresses, key=lambda a: ":" in a)[0]  # IPv4 first (``localhost`` lists ::1 first on many hosts)
    netloc = (f"[{ip}]" if ":" in ip else ip) + f":{port}"
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return parts._replace(netloc=netloc).geturl(), {"Host": parts.netloc.rpartition("@")[2]}, extensions


class WebhookSender:
    def __init__(self, settings: Settings, jobs: JobRepository, metrics: Metrics,
                 client: httpx.Client | None = None) -> None:
        self._settings = settings
        self._jobs = jobs
        self._metrics = metrics
        self._client = client or httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def deliver_for(self, job_id: str) -> None:
        job = self._jobs.get(job_id)
        if job is not None and job.webhook_state == "pending":
            self.deliver(job)

    def deliver_due(self, now: datetime | None = None) -> int:
        due = self._jobs.webhooks_due(now or utcnow())
        for job in due:
            self.deliver(job)
        return len(due)

    def deliver(self, job: Job) -> bool:
        """One try; records the result (with the next retry time) in the job row."""
        secret = self._settings.webhook_secret
        url = job.callback_url
        if secret is None or not url:
            self._jobs.webhook_result(job, delivered=False, next_at=None,
                                      error="no callback URL" if secret is not None else
                                      "ECHO4D_WEBHOOK_SECRET is not set: webhooks are not sent")
            return False
        body = json.dumps({"type": "job.finished", "job": job_out(job).model_dump(mode="json")},
                          sort_keys=True, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "echo4d-webhook/1",
                   SIGNATURE_HEADER: signature_header(secret.get_secret_value(), body),
                   EVENT_ID_HEADER: f"{job.id}.{job.status}"}
        ok = False
        error: str | None = None
        try:
            target, host_header, extensions = pinned_request(url, self._settings.webhook_allow_private)
            resp = self._client.post(target, content=body, headers=headers | host_header, extensions=extensions)
            ok = 200 <= resp.status_code < 300
            outcome = "delivered" if ok else f"http_{resp.status_code // 100}xx"
            error = None if ok else f"HTTP {resp.status_code}"
        except Blocked:
            outcome, error = "blocked", "blocked: the callback host resolves to a private address"
        except (httpx.HTTPError, OSError) as exc:
            outcome, error = "unreachable", f"unreachable ({type(exc).__name__})"
        attempt = job.webhook_attempts + 1
        next_at = None
        if not ok and attempt < self._settings.webhook_max_attempts and outcome != "blocked":
            next_at = utcnow() + timedelta(seconds=min(3600.0, 5.0 * 2 ** (attempt - 1)))
        self._jobs.webhook_result(job, delivered=ok, next_at=next_at, error=error)
        self._metrics.webhook_deliveries.labels(outcome).inc()
        log.info("webhook_attempt", job_id=job.id, outcome=outcome, attempt=attempt)
        return ok
