"""How the API hands a job to workers: the Celery broker, or (embedded) a wake-up of the worker child.

Either way the job table is the source of truth: a lost message only delays a job until the
reconciler re-enqueues it, and a duplicate message is harmless because claiming is atomic.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import TYPE_CHECKING, Any, Protocol

from jobcore.errors import PlatformCode, TransientError

if TYPE_CHECKING:
    from celery import Celery

RECONSTRUCT_TASK = "echo4d.reconstruct_job"
_SCAN_LIMIT = 10_000


class JobQueue(Protocol):
    name: str

    def enqueue(self, job_id: str) -> None:
        """Publish ``job_id``; raises ``TransientError(BROKER_UNAVAILABLE)`` when that is impossible."""

    def depth(self) -> int | None:
        """Messages waiting, or None when unknown."""
        ...

    def ping(self) -> None:
        ...

    def pending_job_ids(self) -> set[str] | None:
        """Job ids held by the broker (waiting or delivered-unacked), or None when it cannot tell."""
        ...

    def close(self) -> None:
        ...


class LocalQueue:
    """Embedded mode: the job table is the queue; enqueue only sets ``wakeup``, which the supervisor in the
    API process (``worker.embedded.EmbeddedWorkerProcess``) relays to the worker child over its stdin pipe."""

    name = "local"

    def __init__(self) -> None:
        self.wakeup = threading.Event()

    def enqueue(self, job_id: str) -> None:
        self.wakeup.set()

    def depth(self) -> int | None:
        return None

    def ping(self) -> None:
        return None

    def pending_job_ids(self) -> set[str] | None:
        return None

    def close(self) -> None:
        self.wakeup.set()


class CeleryQueue:
    """Distributed mode: one Celery message per job on ``queue_name`` (Redis or RabbitMQ)."""

    def __init__(self, app: Celery, queue_name: str) -> None:
        self._app = app
        self.name = queue_name
        url = str(app.conf.broker_url or "")
        self._redis: Any = None
        if url.startswith(("redis://", "rediss://")):
            import redis

            self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def enqueue(self, job_id: str) -> None:
        try:
            self._app.send_task(RECONSTRUCT_TASK, args=[job_id], queue=self.name, retry=True,
                                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5,
                                              "interval_max": 2.0})
        except Exception as exc:  # kombu/redis/amqp connection errors all mean the same thing here
            raise TransientError("the job queue is unreachable", code=PlatformCode.BROKER_UNAVAILABLE) from exc

    def depth(self) -> int | None:
        try:
            if self._redis is not None:
                return int(self._redis.llen(self.name))
            with self._app.connection_for_read() as conn:
                declared = conn.default_channel.queue_declare(queue=self.name, passive=True)
                return int(declared.message_count)
        except Exception:
            return None

    def ping(self) -> None:
        try:
            if self._redis is not None:
                self._redis.ping()
                return
            with self._app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=5)
        except Exception as exc:
            raise TransientError("the job queue is unreachable", code=PlatformCode.BROKER_UNAVAILABLE) from exc

    def pending_job_ids(self) -> set[str] | None:
        """Redis only: scan the queue list and the unacked hash for our task's job ids."""
        if self._redis is None:
            return None
        try:
            raw = list(self._redis.lrange(self.name, 0, _SCAN_LIMIT))
            unacked = list(self._redis.hvals("unacked"))[:_SCAN_LIMIT]
        except Exception:
            return None
        ids: set[str] = set()
        for item in raw:
            ids.update(_job_ids_of(item))
        for item in unacked:  # kombu stores [message, exchange, routing_key]; the hash is shared by all queues
            try:
                message, _exchange, routing_key = json.loads(item)[:3]
            except (ValueError, TypeError):
                continue
            if routing_key == self.name:
                ids.update(_job_ids_of(json.dumps(message)))
        return ids

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def _job_ids_of(raw: bytes | str) -> set[str]:
    """Job id argument of a kombu message (protocol 2, JSON body, base64 body encoding)."""
    try:
        message = json.loads(raw)
        if message.get("headers", {}).get("task") != RECONSTRUCT_TASK:
            return set()
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return {str(args[0])} if args else set()
    except (ValueError, KeyError, IndexError, TypeError):
        return set()
