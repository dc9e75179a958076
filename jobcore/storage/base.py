"""The object store interface shared by the API (inputs in, artifacts out) and the worker.

Keys are deterministic and free of patient values: ``inputs/{job_id}/...`` and
``outputs/{job_id}/{name}``. Writes are whole-object and atomic (a reader never sees half an
object), so re-running a job overwrites its artifacts with identical ones instead of adding more.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from models.errors import ErrorCode, InputError

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    content_type: str
    modified: datetime | None = None


@dataclass(frozen=True)
class ListedObject:
    """One entry of a listing: what a sweep needs to judge an object without reading it."""

    key: str
    size: int
    modified: datetime  # last write, timezone-aware UTC


def check_key(key: str) -> str:
    """Reject keys that could escape a folder or carry odd characters."""
    if len(key) > 512 or not _KEY_RE.match(key) or ".." in key.split("/"):
        raise InputError("invalid object key", code=ErrorCode.VALIDATION_FAILED, field="key")
    return key


def input_key(job_id: str, name: str) -> str:
    return check_key(f"inputs/{job_id}/{name}")


def output_key(job_id: str, name: str) -> str:
    return check_key(f"outputs/{job_id}/{name}")


class ObjectStore(Protocol):
    """A bucket-like store. Infrastructure failures raise ``TransientError(STORE_UNAVAILABLE)``."""

    kind: str

    def ensure_ready(self) -> None:
        """Create the bucket / folder if needed."""

    def ping(self) -> None:
        """Raise ``TransientError`` when the store cannot be reached."""

    def put_stream(self, key: str, stream: BinaryIO, *, length: int | None = None,
                   content_type: str = "application/octet-stream") -> ObjectInfo:
        """Stream ``stream`` into ``key`` without reading it whole into memory."""
        ...

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> ObjectInfo:
        ...

    def stat(self, key: str) -> ObjectInfo | None:
        ...

    def iter_bytes(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``start..end`` (inclusive; ``None``: to the end) in chunks."""
        ...

    def download(self, key: str, dest: Path) -> None:
        ...

    def list_keys(self, prefix: str) -> list[str]:
        ...

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        """Objects under ``prefix`` in key order (so the keys of one folder come together), with size and
        last-modified time; lazily, page by page on S3. Objects still being written are not listed."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        ...

    def presigned_url(self, key: str, ttl_s: int, download_name: str | None = None) -> str | None:
        """A short-lived direct URL, or None when the store cannot make one (local folder)."""
        ...
