"""LocalStore: the object store as a folder (embedded mode). Atomic writes, ETag = sha256 prefix."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from jobcore.errors import PlatformCode, TransientError
from jobcore.storage.base import CHUNK_BYTES, ListedObject, ObjectInfo, check_key

_META = ".meta"


class LocalStore:
    """Objects under ``root/<key>``; content type and ETag in ``root/.meta/<key>.json``."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _meta_path(self, key: str) -> Path:
        return self.root / _META / (check_key(key) + ".json")

    def ensure_ready(self) -> None:
        with _store_errors():
            (self.root / _META).mkdir(parents=True, exist_ok=True)

    def ping(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise TransientError("the local object store folder is missing or read-only",
                                 code=PlatformCode.STORE_UNAVAILABLE)

    def put_stream(self, key: str, stream: BinaryIO, *, length: int | None = None,
                   content_type: str = "application/octet-stream") -> ObjectInfo:
        """Write data and metadata to temporary files, then rename both into place: a failure (disk full)
        leaves neither a partial object nor a partial metadata file behind."""
        dest = self._path(key)
        meta = self._meta_path(key)
        digest = hashlib.sha256()
        size = 0
        temps: list[str] = []
        with _store_errors():
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".upload-")
                temps.append(tmp_name)
                with os.fdopen(fd, "wb") as out:
                    while chunk := stream.read(CHUNK_BYTES):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                etag = digest.hexdigest()[:32]
                meta.parent.mkdir(parents=True, exist_ok=True)
                mfd, meta_tmp = tempfile.mkstemp(dir=meta.parent, prefix=".upload-")
                temps.append(meta_tmp)
                with os.fdopen(mfd, "w") as mout:
                    mout.write(json.dumps({"etag": etag, "content_type": content_type, "size": size}))
                os.replace(meta_tmp, meta)
                os.replace(tmp_name, dest)
            except BaseException:
                for name in temps:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name)
                self._prune_empty_folders([key])
                raise
        return ObjectInfo(key, size, etag, content_type, datetime.now(UTC))

    def put_file(self, key: str, path: Path, content_type: str = "application/octet-stream") -> ObjectInfo:
        with _store_errors(), open(path, "rb") as f:
            return self.put_stream(key, f, length=path.stat().st_size, content_type=content_type)

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
            meta = json.loads(self._meta_path(key).read_text())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TransientError("the local object store cannot be read", code=PlatformCode.STORE_UNAVAILABLE) from exc
        return ObjectInfo(key, st.st_size, str(meta["etag"]), str(meta["content_type"]),
                          datetime.fromtimestamp(st.st_mtime, UTC))

    def iter_bytes(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._path(key)
        with _store_errors(), open(path, "rb") as f:
            f.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                chunk = f.read(CHUNK_BYTES if remaining is None else min(CHUNK_BYTES, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def download(self, key: str, dest: Path) -> None:
        with _store_errors():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._path(key), dest)

    def list_keys(self, prefix: str) -> list[str]:
        base = self.root / check_key(prefix.rstrip("/"))  # a folder prefix; never one that leaves the root
        with _store_errors():
            if not base.is_dir():
                return [prefix] if base.is_file() else []
            return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*")
                          if p.is_file() and not p.name.startswith(".upload-"))

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        """In key order; a temporary ``.upload-*`` file (a write in progress) is not an object yet."""
        for key in self.list_keys(prefix):
            try:
                st = (self.root / key).stat()  # listed from this folder: no key check (a stray name must not stop it)
            except FileNotFoundError:
                continue  # deleted since it was listed
            except OSError as exc:
                raise TransientError("the local object store cannot be read",
                                     code=PlatformCode.STORE_UNAVAILABLE) from exc
            yield ListedObject(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix`` and its metadata (also when one of the two is already gone)."""
        keys = self.list_keys(prefix)
        with _store_errors():
            for key in keys:
                for path in (self.root / key, self.root / _META / (key + ".json")):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
            self._prune_empty_folders(keys)  # no empty inputs/{id}/ left behind
        return len(keys)

    def _prune_empty_folders(self, keys: list[str]) -> None:
        """Remove the folders that held ``keys`` (data and metadata side) while they are empty."""
        for key in keys:
            for base in (self.root, self.root / _META):
                folder = (base / key).parent
                while folder != base and folder.is_relative_to(base):
                    try:
                        folder.rmdir()
                    except OSError:  # not empty, or gone: stop climbing
                        break
                    folder = folder.parent

    def presigned_url(self, key: str, ttl_s: int, download_name: str | None = None) -> str | None:
        return None


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        detail = "the object store is full" if full else "the local object store failed"
        raise TransientError(detail, code=PlatformCode.STORE_UNAVAILABLE) from exc
