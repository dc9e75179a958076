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
