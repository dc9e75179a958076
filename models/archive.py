"""Reading zip archives that may be hostile: bounded, vetted, never extracted to disk.

Every archive a client sends (study bundles, zipped PNG series, DICOM sets) goes through here:
the central directory is sized before ``zipfile`` parses it, every entry is vetted (traversal,
absolute paths, symbolic links, duplicates, control characters) before anything is inflated,
and members are inflated in bounded chunks. See docs/reliability.md.
"""

from __future__ import annotations

import os
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO, Final

from models.errors import ErrorCode, InputError

MAX_ZIP_MEMBERS: Final = 5000
MAX_DEFLATE_RATIO: Final = 1024  # deflate cannot beat ~1032:1; a member declaring more lies about its size
_MAX_ENTRY_BYTES: Final = 512  # average central-directory bytes per entry allowed (46 + name + extra fields)
_EOCD: Final = struct.Struct("<4s4H2LH")  # end of central directory record
_READ_CHUNK: Final = 1 << 20
# What zipfile raises on damaged archives (UnicodeDecodeError is a ValueError; a bad deflate stream is zlib.error).
_ZIP_ERRORS: Final = (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, zlib.error)
_S_IFMT, _S_IFLNK = 0o170000, 0o120000


def zip_directory_extent(f: BinaryIO) -> tuple[int, int] | None:
    """(entries, central directory bytes) that a zip's end records declare (zip64 aware), or None.

    Read from the last 64 KiB only: zipfile builds one object per central-directory entry when it
    opens an archive (an 86 MB zip of a million empty entries costs ~0.5 GB and a minute), so the
    entry count and the directory size must be capped before ``zipfile.ZipFile`` is called.
    """
    size = f.seek(0, os.SEEK_END)
    f.seek(max(0, size - _EOCD.size - 0xFFFF))
    tail = f.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(tail):
        return None
    entries, cd_size = _EOCD.unpack_from(tail, at)[4:6]
    if (entries == 0xFFFF or cd_size == 0xFFFFFFFF) and at >= 20 and tail[at - 20 : at - 16] == b"PK\x06\x07":
        f.seek(struct.unpack_from("<Q", tail, at - 12)[0])
        record = f.read(56)  # the zip64 end of central directory record
        if len(record) == 56 and record[:4] == b"PK\x06\x06":
            entries, cd_size = struct.unpack_from("<QQ", record, 32)
    return int(entries), int(cd_size)


def check_zip_directory(f: BinaryIO, where: str, max_members: int = MAX_ZIP_MEMBERS) -> None:
    """Refuse (UNSAFE_ARCHIVE) a zip whose end records declare more than ``max_members`` entries or a central
    directory larger than they can need; reads only the tail of ``f`` (call before ``zipfile.ZipFile``)."""
    try:
        extent = zip_directory_extent(f)
    except (OSError, struct.error):
        extent = None
    if extent is not None and (extent[0] > max_members or extent[1] > max_members * _MAX_ENTRY_BYTES):
        raise InputError(f"{where} declares {extent[0]} entries in a {extent[1]}-byte directory (limit "
                         f"{max_members} entries)", code=ErrorCode.UNSAFE_ARCHIVE, field=where)


def open_zip(path: Path, where: str) -> zipfile.ZipFile:
    """Open a zip whose central directory may be hostile: its declared entry count and directory size are
    capped first (UNSAFE_ARCHIVE); damage → CORRUPT_FILE, never another exception."""
    try:
        with path.open("rb") as f:
            check_zip_directory(f, where)
    except OSError:
        pass
    try:
        return zipfile.ZipFile(path)
    except _ZIP_ERRORS:  # incl. UnicodeDecodeError: an entry flagged UTF-8 whose name is not
        raise InputError(f"{where} is a damaged zip (unreadable central directory or entry names)",
                         code=ErrorCode.CORRUPT_FILE, field=where) from None


def _unsafe_entry(info: zipfile.ZipInfo) -> str | None:
    """Why an entry makes the archive unsafe to handle (also for tools that would extract it), else None."""
    raw = info.orig_filename  # before zipfile cut it at a NUL byte
    name = raw.replace("\\", "/")
    if not raw or name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in name.split("/"):
        return "an absolute or parent-relative path"
    if any(ord(ch) < 32 for ch in raw):
        return "a name with control characters"
    if (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
        return "a symbolic link"
    return None


def check_zip_entries(zf: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    """Vet every entry of ``zf`` from its central directory (nothing is inflated); returns the files by name.

    Rejects (UNSAFE_ARCHIVE) more than :data:`MAX_ZIP_MEMBERS` entries, path traversal, absolute or
    drive paths, control characters, symbolic links and duplicate names (which copy would a tool use?).
    """
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise InputError(f"{where} holds {len(infos)} entries (limit {MAX_ZIP_MEMBERS})",
                         code=ErrorCode.UNSAFE_ARCHIVE, field=where)
    files: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    for info in infos:
        why = _unsafe_entry(info)
        if why is None and info.filename.rstrip("/") in seen:
            why = "two entries with the same name"
        if why is not None:
            raise InputError(f"{where} holds {why}", code=ErrorCode.UNSAFE_ARCHIVE, field=where)
        seen.add(info.filename.rstrip("/"))
        if not info.is_dir():
            files[info.filename] = info
    return files


def read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int, where: str) -> bytes:
    """Inflate one member after checking its method, declared size and ratio; memory stays ≤ its declared size.

    Only stored and deflated members are read (zipfile inflates bzip2/lzma without an output bound).
    Reading goes 1 MiB at a time: ``zf.read`` would inflate up to 2 GiB in one call before cutting to
    the declared size, so a member that lies about its size could still exhaust memory. Here zipfile
    stops at the declared size and the CRC check then fails (CORRUPT_FILE).
    """
    if info.flag_bits & 0x1:
        raise InputError(f"{where} holds encrypted members", code=ErrorCode.UNSAFE_ARCHIVE, field=where)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise InputError(f"{where} uses a compression method other than deflate or none; re-zip it with defaults",
                         code=ErrorCode.UNSUPPORTED_FORMAT, field=where)
    if info.file_size > max_bytes:
        raise InputError(f"{where}: a member is {info.file_size} bytes, beyond the {max_bytes}-byte limit",
                         code=ErrorCode.TOO_LARGE, field=where)
    lying = (info.file_size != info.compress_size if info.compress_type == zipfile.ZIP_STORED
             else info.file_size > MAX_DEFLATE_RATIO * max(info.compress_size, 1))
    if lying:
        raise InputError(f"{where}: a member declares sizes no honest archive has (compression ratio beyond "
                         f"{MAX_DEFLATE_RATIO}:1)", code=ErrorCode.UNSAFE_ARCHIVE, field=where)
    out = bytearray()
    try:
        with zf.open(info) as f:
            while chunk := f.read(_READ_CHUNK):
                out += chunk
    except _ZIP_ERRORS:
        raise InputError(f"{where}: a member cannot be read (damaged zip)", code=ErrorCode.CORRUPT_FILE,
                         field=where) from None
    return bytes(out)
