"""Helpers for the hostile-input tests (plain functions; fixtures live in conftest.py).

Shared by ``tests/models/test_study_hostile.py``, ``tests/models/ingest/test_ingest_hostile.py`` and
``tests/models/ingest/test_ingest_fuzz.py``: a wall-clock bound, a time- and memory-bounded call wrapper, and
byte-level builders of ``.npy`` files and (damaged) zip archives. Builders specific to one test file stay there.
"""

from __future__ import annotations

import io
import signal
import stat
import struct
import tracemalloc
import zipfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike

from models.errors import InputError

T = TypeVar("T")

MiB = 1 << 20
TIMEOUT_MESSAGE = "still running after {seconds} s"
MAX_MESSAGE_CHARS = 400  # messages never echo kilobytes of hostile input


# ----------------------------------------------------------------------------- time and memory bounds


@contextmanager
def deadline(seconds: float, message: str = TIMEOUT_MESSAGE) -> Iterator[None]:
    """Fail (instead of hanging) when the body runs longer than ``seconds``.

    Raises ``TimeoutError(message.format(seconds=seconds))`` from a SIGALRM timer: main thread only, not nestable;
    the previous SIGALRM handler is restored on exit.
    """

    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(message.format(seconds=seconds))

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def traced(call: Callable[[], T], seconds: float = 10.0, *, timeout_message: str = TIMEOUT_MESSAGE,
           max_message_chars: int = MAX_MESSAGE_CHARS) -> tuple[T | InputError, int]:
    """Run ``call`` under :func:`deadline` and tracemalloc.

    Returns (its result or the :class:`InputError` it raised, the peak traced allocation in bytes); any other
    exception propagates. An InputError's message must be shorter than ``max_message_chars``.
    """
    tracemalloc.start()
    try:
        with deadline(seconds, timeout_message):
            try:
                out: T | InputError = call()
            except InputError as exc:
                out = exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    if isinstance(out, InputError):
        assert len(str(out)) < max_message_chars, f"an error message of {len(str(out))} characters"
    return out, peak


def refused(call: Callable[[], object], seconds: float = 10.0) -> tuple[InputError, int]:
    """Like :func:`traced`, for a call that must raise an InputError: (the error, the peak traced bytes)."""
    out, peak = traced(call, seconds)
    assert isinstance(out, InputError), f"accepted: {out!r}"
    return out, peak


# ----------------------------------------------------------------------------- .npy and zip builders


def npy_bytes(arr: ArrayLike) -> bytes:
    """``arr`` as the bytes of a ``.npy`` file (object arrays are pickled into it)."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def zip_bytes(entries: Iterable[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip archive of ``entries`` (name or ZipInfo, data), in order; duplicate names are written as given."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def patch_entry(data: bytes, name: bytes, *, flags: int = 0, file_size: int | None = None,
                new_name: bytes | None = None) -> bytes:
    """Edit the local and central headers of the entry ``name``: OR ``flags``, set the size, rename (same length)."""
    raw = bytearray(data)
    for sig, name_at, len_at, flag_at, size_at in ((b"PK\x03\x04", 30, 26, 6, 22), (b"PK\x01\x02", 46, 28, 8, 24)):
        j = raw.find(sig)
        while j >= 0:
            n = struct.unpack_from("<H", raw, j + len_at)[0]
            if raw[j + name_at : j + name_at + n] == name:
                struct.pack_into("<H", raw, j + flag_at, struct.unpack_from("<H", raw, j + flag_at)[0] | flags)
                if file_size is not None:
                    struct.pack_into("<I", raw, j + size_at, file_size)
                if new_name is not None:
                    assert len(new_name) == n, "a new name must keep the length: the offsets are not rewritten"
                    raw[j + name_at : j + name_at + n] = new_name
            j = raw.find(sig, j + 4)
    return bytes(raw)


def symlink_member(name: str, target: bytes) -> tuple[zipfile.ZipInfo, bytes]:
    """A zip entry (for :func:`zip_bytes`) whose Unix mode marks ``name`` as a symbolic link to ``target``."""
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


def raw_entries_zip(n: int, declared: int | None = None, zip64_declared: int | None = None) -> bytes:
    """A zip of ``n`` empty stored entries, written byte by byte (fast for 10⁵ entries); the end record
    may declare another count (``declared``) or defer to a zip64 record declaring ``zip64_declared``."""
    local, central = [], []
    offset = 0
    for k in range(n):
        name = b"%d" % k
        local.append(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name)
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0,
                                   0, offset) + name)
        offset += len(local[-1])
    cd = b"".join(central)
    count = n if declared is None else declared
    tail = b""
    if zip64_declared is not None:
        record_at = offset + len(cd)
        tail = (struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, zip64_declared, zip64_declared, len(cd),
                            offset) + struct.pack("<4sLQL", b"PK\x06\x07", 0, record_at, 1))
        count = 0xFFFF
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF), len(cd), offset, 0)
    return b"".join(local) + cd + tail + eocd


def raw_member_zip(name: str, raw: bytes, *, method: int, file_size: int, crc: int = 0) -> bytes:
    """A one-member zip whose headers say ``method`` and ``file_size`` over the already compressed ``raw`` bytes
    (a member whose declared size lies, e.g. a bzip2 bomb declared tiny)."""
    fname = name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 46, 0, method, 0, 0, crc, len(raw), file_size, len(fname), 0)
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 46, 46, 0, method, 0, 0, crc, len(raw), file_size,
                          len(fname), 0, 0, 0, 0, 0, 0)
    body = local + fname + raw
    cd = central + fname
    return body + cd + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(cd), len(body), 0)
