"""Read the pixel size an encoded frame claims (JPEG / JPEG-LS SOF, JPEG 2000 SIZ) without decoding it.

A compressed frame whose own header disagrees with the DICOM Rows/Columns is rejected
before a decoder allocates what the frame claims (a 65535×65535 JPEG inside a 240×320 cine).
"""

from __future__ import annotations

import struct
from typing import Final

_SOF_MARKERS: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD9)})
_SCAN_LIMIT: Final = 1 << 16


def jpeg_size(buf: bytes) -> tuple[int, int] | None:
    """(height, width) from the first SOF segment of a JPEG / JPEG-LS stream, None if absent."""
    if not buf.startswith(b"\xff\xd8"):
        return None
    i, n = 2, min(len(buf), _SCAN_LIMIT)
    while i + 4 <= n:
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _STANDALONE:
            i += 2
            continue
        (length,) = struct.unpack(">H", buf[i + 2 : i + 4])
        if marker in _SOF_MARKERS:
            if i + 9 > len(buf):
                return None
            height, width = struct.unpack(">HH", buf[i + 5 : i + 9])
            return int(height), int(width)
        if marker == 0xDA or length < 2:  # start of scan before any SOF: malformed
            return None
        i += 2 + length
    return None


def j2k_size(buf: bytes) -> tuple[int, int] | None:
    """(height, width) from the SIZ segment of a JPEG 2000 codestream (bare or inside a JP2 box)."""
    at = buf.find(b"\xff\x4f\xff\x51", 0, _SCAN_LIMIT)
    if at < 0 or at + 24 > len(buf):
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", buf[at + 8 : at + 24])
    return int(ysiz - yosiz), int(xsiz - xosiz)


_JPEG_SYNTAXES: Final = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                                   "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
_J2K_SYNTAXES: Final = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                                  "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"})


def encoded_frame_size(buf: bytes, transfer_syntax: str) -> tuple[int, int] | None:
    """The size an encoded frame declares, for the syntaxes whose header we can read; else None."""
    if transfer_syntax in _JPEG_SYNTAXES:
        return jpeg_size(buf)
    if transfer_syntax in _J2K_SYNTAXES:
        return j2k_size(buf)
    return None
