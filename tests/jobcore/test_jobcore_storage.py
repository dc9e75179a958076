"""The object store interface, identical behaviour on a folder and on S3 (moto server + the real minio client)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from jobcore.errors import TransientError
from jobcore.storage import LocalStore, ObjectStore, check_key, input_key, output_key
from jobcore.storage.s3 import MinioStore
from models.errors import InputError


@pytest.fixture(params=["local", "minio"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "local":
        s: ObjectStore = LocalStore(tmp_path / "objects")
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        s = MinioStore(endpoint, "testing", "testing", request.getfixturevalue("bucket"))
    s.ensure_ready()
    s.ensure_ready()  # idempotent
    yield s


class _Chunks(io.RawIOBase):
    """A non-seekable stream of ``n`` chunks: proves uploads do not need the whole body at once."""

    def __init__(self, n: int, size: int) -> None:
        self._left, self._size = n, size

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        if self._left == 0:
            return 0
        self._left -= 1
        k = min(len(b), self._size)
        b[:k] = bytes([65 + self._left % 26]) * k
        return k


def test_roundtrip_stat_range_list_delete(store: ObjectStore, tmp_path: Path):
    data = bytes(range(256)) * 40
    info = store.put_stream("outputs/j1/mesh.glb", io.BytesIO(data), length=len(data), content_type="model/gltf-binary")
    assert info.size == len(data)
    st = store.stat("outputs/j1/mesh.glb")
    assert st is not None and (st.size, st.content_type) == (len(data), "model/gltf-binary") and st.etag
    assert b"".join(store.iter_bytes("outputs/j1/mesh.glb")) == data
    assert b"".join(store.iter_bytes("outputs/j1/mesh.glb", 10, 19)) == data[10:20]
    assert b"".join(store.iter_bytes("outputs/j1/mesh.glb", 10000)) == data[10000:]
    store.download("outputs/j1/mesh.glb", tmp_path / "dl" / "m.glb")
    assert (tmp_path / "dl" / "m.glb").read_bytes() == data
    store.put_stream("outputs/j1/report.json", io.BytesIO(b"{}"), length=2)
    assert store.list_keys("outputs/j1/") == ["outputs/j1/mesh.glb", "outputs/j1/report.json"]
    assert store.stat("outputs/j1/missing") is None
    assert store.delete_prefix("outputs/j1/") == 2
    assert store.list_keys("outputs/j1/") == []


def test_same_content_same_etag_and_overwrite_keeps_one_object(store: ObjectStore):
    a = store.put_stream("outputs/j/x.bin", io.BytesIO(b"same"), length=4)
    b = store.put_stream("outputs/j/x.bin", io.BytesIO(b"same"), length=4)
    assert a.etag == b.etag
    assert store.list_keys("outputs/j/") == ["outputs/j/x.bin"]


def test_streaming_upload_of_unknown_length(store: ObjectStore):
    info = store.put_stream("inputs/j/big.bin", io.BufferedReader(_Chunks(40, 64 * 1024)), length=None)
    assert info.size == 40 * 64 * 1024
    assert store.stat("inputs/j/big.bin").size == info.size  # type: ignore[union-attr]


def test_list_objects_in_key_order_with_size_and_time(store: ObjectStore):
    before = datetime.now(UTC) - timedelta(seconds=2)  # S3 listings carry whole seconds
    for key in ("inputs/b/2.bin", "inputs/a/x.bin", "inputs/b/1.bin", "inputs/a-b/y.bin", "outputs/a/mesh.glb"):
        store.put_stream(key, io.BytesIO(b"abc"), length=3)
    after = datetime.now(UTC) + timedelta(seconds=2)
    listed = list(store.list_objects("inputs/"))
    assert [o.key for o in listed] == ["inputs/a-b/y.bin", "inputs/a/x.bin", "inputs/b/1.bin", "inputs/b/2.bin"]
    assert all(o.size == 3 and o.modified.tzinfo is not None and before <= o.modified <= after for o in listed)
    assert [o.key for o in store.list_objects("inputs/b/")] == ["inputs/b/1.bin", "inputs/b/2.bin"]
    assert list(store.list_objects("inputs/none/")) == []


def test_an_object_being_written_is_neither_listed_nor_deleted_on_a_folder(tmp_path: Path):
    """The folder store writes to a temporary file first: a listing or a delete in the middle of a write sees
    nothing under that key (S3 shows an object only once its upload completed), and the write still lands."""
    store = LocalStore(tmp_path / "objects")
    store.ensure_ready()
    seen: dict[str, object] = {}

    class _Probe(io.RawIOBase):
        def __init__(self) -> None:
            self.calls = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
            self.calls += 1
            if self.calls == 1:
                b[:4] = b"half"
                return 4
            seen["listed"] = [o.key for o in store.list_objects("inputs/")]
            seen["deleted"] = store.delete_prefix("inputs/j/")
            return 0

    store.put_stream("inputs/j/a.bin", _Probe(), length=None)
    assert seen == {"listed": [], "deleted": 0}
    assert store.list_keys("inputs/j/") == ["inputs/j/a.bin"] and store.stat("inputs/j/a.bin").size == 4  # type: ignore[union-attr]


@pytest.mark.parametrize("prefix", ["../", "inputs/../../", "/etc/"])
def test_a_folder_store_never_lists_or_deletes_outside_its_root(tmp_path: Path, prefix: str):
    (tmp_path / "outside.txt").write_text("keep")
    store = LocalStore(tmp_path / "objects")
    store.ensure_ready()
    for op in (store.list_keys, store.delete_prefix, lambda p: list(store.list_objects(p))):
        with pytest.raises(InputError):
            op(prefix)
    assert (tmp_path / "outside.txt").read_text() == "keep"


def test_presigned_url_only_on_minio(store: ObjectStore):
    store.put_stream("outputs/j/r.json", io.BytesIO(b'{"a": 1}'), length=8, content_type="application/json")
    url = store.presigned_url("outputs/j/r.json", 60, "r.json")
    if store.kind == "local":
        assert url is None
    else:
        assert url is not None and "X-Amz-Signature" in url
        assert httpx.get(url).content == b'{"a": 1}'


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a//b", "a/../b", "", "a b", "inputs/j/\u00e9"])
def test_unsafe_keys_are_refused(key: str):
    with pytest.raises(InputError):
        check_key(key)


def test_key_builders():
    assert input_key("abc", "study.zip") == "inputs/abc/study.zip"
    assert output_key("abc", "mesh.glb") == "outputs/abc/mesh.glb"


@pytest.mark.parametrize("op", ["ping", "list_objects", "delete_prefix"])
def test_unreachable_minio_is_transient(op: str):
    dead = MinioStore("127.0.0.1:9", "a", "b", "nobucket")
    calls = {"ping": dead.ping, "list_objects": lambda: list(dead.list_objects("outputs/")),
             "delete_prefix": lambda: dead.delete_prefix("outputs/j/")}
    with pytest.raises(TransientError) as err:
        calls[op]()
    assert err.value.code.value == "store_unavailable"


def test_read_only_local_store_is_not_ready(tmp_path: Path):
    store = LocalStore(tmp_path / "missing")
    with pytest.raises(TransientError):
        store.ping()
