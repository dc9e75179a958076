"""MinioStore: the object store on MinIO (or any S3 API) through the ``minio`` client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from jobcore.errors import PlatformCode, TransientError
from jobcore.storage.base import CHUNK_BYTES, ListedObject, ObjectInfo, check_key

PART_BYTES = 16 * 1024 * 1024  # multipart upload part size: bounded memory for any object size
_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound")


class MinioStore:
    kind = "minio"

    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, *, secure: bool = False,
                 region: str = "us-east-1", public_endpoint: str | None = None) -> None:
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5.0, read=120.0), maxsize=16,
            retries=urllib3.Retry(total=3, backoff_factor=0.3, status_forcelist=(500, 502, 503, 504)),
        )
        self._client = Minio(endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                             region=region, http_client=http)
        self._signer = (Minio(public_endpoint, access_key=access_key, secret_key=secret_key, secure=secure,
                              region=region) if public_endpoint else self._client)
        self.bucket = bucket

    def ensure_ready(self) -> None:
        with _s3_errors():
            if not self._client.bucket_exists(bucket_name=self.bucket):
                with contextlib.suppress(S3Error):  # another replica may create it concurrently
                    self._client.make_bucket(bucket_name=self.bucket)

    def ping(self) -> None:
        with _s3_errors():
            if not self._client.bucket_exists(bucket_name=self.bucket):
                raise TransientError("the object store bucket does not exist", code=PlatformCode.STORE_UNAVAILABLE)

    def put_stream(self, key: str, stream: BinaryIO, *, length: int | None = None,
                   content_type: str = "application/octet-stream") -> ObjectInfo:
        with _s3_errors():
            res = self._client.put_object(
                bucket_name=self.bucket, object_name=check_key(key), data=stream,
                length=-1 if length is None else length, part_size=PART_BYTES, content_type=content_type,
                num_parallel_uploads=1,
            )
        info = self.stat(key)
        return info or ObjectInfo(key, length or 0, (res.etag or "").strip('"'), content_type)

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> ObjectInfo:
        with open(path, "rb") as f:
            return self.put_stream(key, f, length=path.stat().st_size, content_type=content_type)

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            with _s3_errors():
                st = self._client.stat_object(bucket_name=self.bucket, object_name=check_key(key))
        except _Missing:
            return None
        return ObjectInfo(key, int(st.size or 0), (st.etag or "").strip('"'),
                          st.content_type or "application/octet-stream", st.last_modified)

    def iter_bytes(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        length = 0 if end is None else end - start + 1
        with _s3_errors():
            resp: Any = self._client.get_object(bucket_name=self.bucket, object_name=check_key(key),
                                                offset=start, length=length)
        try:
            with _s3_errors():
                yield from resp.stream(CHUNK_BYTES)
        finally:
            resp.close()
            resp.release_conn()

    def download(self, key: str, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with _s3_errors():
            self._client.fget_object(bucket_name=self.bucket, object_name=check_key(key), file_path=str(dest))

    def list_keys(self, prefix: str) -> list[str]:
        with _s3_errors():
            return sorted(str(o.object_name) for o in
                          self._client.list_objects(bucket_name=self.bucket, prefix=prefix, recursive=True))

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        """In key order (S3 lists lexicographically), one page of up to 1000 keys per request."""
        with _s3_errors():
            for o in self._client.list_objects(bucket_name=self.bucket, prefix=prefix, recursive=True):
                if o.object_name is None or o.is_dir:
                    continue
                # no time: treat it as written just now, so that no age-based sweep ever deletes it
                yield ListedObject(str(o.object_name), int(o.size or 0), o.last_modified or datetime.now(UTC))

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list_keys(prefix)
        with _s3_errors():
            for key in keys:
                self._client.remove_object(bucket_name=self.bucket, object_name=key)
        return len(keys)

    def presigned_url(self, key: str, ttl_s: int, download_name: str | None = None) -> str | None:
        extra: dict[str, str | list[str] | tuple[str]] | None = None
        if download_name:
            extra = {"response-content-disposition": f'attachment; filename="{quote(download_name)}"'}
        with _s3_errors():
            return str(self._signer.presigned_get_object(
                bucket_name=self.bucket, object_name=check_key(key), expires=timedelta(seconds=ttl_s),
                response_headers=extra,
            ))


class _Missing(Exception):
    pass


@contextlib.contextmanager
def _s3_errors() -> Iterator[None]:
    """Missing object → :class:`_Missing`; anything else from the client or network → TransientError."""
    try:
        yield
    except S3Error as exc:
        if exc.code in _MISSING:
            raise _Missing(exc.code) from None
        raise TransientError(f"the object store refused the request ({exc.code})",
                             code=PlatformCode.STORE_UNAVAILABLE) from exc
    except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise TransientError("the object store is unreachable", code=PlatformCode.STORE_UNAVAILABLE) from exc
