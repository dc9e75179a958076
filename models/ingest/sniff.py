"""Recognise an input by its content (magic bytes), not by its file name.

File names only break ties the bytes cannot (a raw DICOM without its 128-byte preamble
looks like any binary); a name alone never makes a file acceptable.
"""

from __future__ import annotations

import gzip
import io
import zlib
from enum import StrEnum


class Format(StrEnum):
    NPY = "npy"
    NIFTI = "nifti"
    NIFTI_GZ = "nifti-gz"
    PNG = "png"
    DICOM = "dicom"
    MP4 = "mp4"
    AVI = "avi"
    ZIP = "zip"
    GZIP = "gzip"  # gzip that is not a NIfTI
    JSON = "json"
    UNKNOWN = "unknown"


_NPY_MAGIC = b"\x93NUMPY"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_GZIP_MAGIC = b"\x1f\x8b"
_NIFTI_MAGICS = (b"n+1\x00", b"ni1\x00", b"n+2\x00", b"ni2\x00")
_MP4_BRANDS = (b"ftyp",)


def _is_nifti_header(head: bytes) -> bool:
    """NIfTI-1 magic at byte 344 (sizeof_hdr 348) or NIfTI-2 magic at byte 4 (sizeof_hdr 540)."""
    if len(head) >= 348 and head[344:348] in _NIFTI_MAGICS:
        return True
    return len(head) >= 12 and head[4:8] in _NIFTI_MAGICS[2:]


def gunzip_head(data: bytes, n: int = 560) -> bytes:
    """The first ``n`` decompressed bytes of a gzip stream (without inflating the rest)."""
    try:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return d.decompress(data[: 1 << 16], n)
    except zlib.error:
        return b""


def _looks_like_raw_dicom(head: bytes) -> bool:
    """A DICOM data set without preamble starts with a group 0x0002 or 0x0008 tag (little endian)."""
    if len(head) < 8:
        return False
    group = int.from_bytes(head[0:2], "little")
    elem = int.from_bytes(head[2:4], "little")
    return group in (0x0002, 0x0008) and elem < 0x0100


def sniff(data: bytes, name: str = "") -> Format:
    """The :class:`Format` of ``data`` (the whole content, or at least its first 64 KiB)."""
    head = data[:1024]
    if head.startswith(_NPY_MAGIC):
        return Format.NPY
    if head.startswith(_PNG_MAGIC):
        return Format.PNG
    if head.startswith(_ZIP_MAGICS):
        return Format.ZIP
    if head.startswith(_GZIP_MAGIC):
        return Format.NIFTI_GZ if _is_nifti_header(gunzip_head(data)) else Format.GZIP
    if _is_nifti_header(head):
        return Format.NIFTI
    if len(head) >= 132 and head[128:132] == b"DICM":
        return Format.DICOM
    if len(head) >= 12 and head[4:8] in _MP4_BRANDS:
        return Format.MP4
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return Format.AVI
    stripped = head.lstrip()
    if stripped.startswith((b"{", b"[")):
        return Format.JSON
    if _looks_like_raw_dicom(head):
        return Format.DICOM
    return Format.UNKNOWN


def gunzip_limited(data: bytes, max_bytes: int) -> bytes | None:
    """Inflate a gzip stream, or ``None`` when it would exceed ``max_bytes`` (a gzip bomb)."""
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
        while True:
            chunk = gz.read(1 << 20)
            if not chunk:
                break
            out.write(chunk)
            if out.tell() > max_bytes:
                return None
    return out.getvalue()
