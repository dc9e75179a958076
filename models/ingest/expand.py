"""Turn the paths a caller gives (files, folders, zips) into in-memory :class:`InputItem` s.

Every file's size is checked before it is read; zips are read member by member, never
extracted to disk: entries are vetted first (count, traversal, symlinks, duplicates), then each
member's method, declared size, ratio and the running total are capped before it is inflated, and
inflation is streamed in 1 MiB chunks, never past the declared size (see ``models.archive.read_zip_member``).
A folder or zip holding ``study.json`` is a study bundle, reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Final

from models.archive import MAX_ZIP_MEMBERS, check_zip_entries, open_zip, read_zip_member
from models.errors import ErrorCode, InputError
from models.ingest.decoded import InputItem, max_file_bytes
from models.ingest.sniff import Format, sniff
from models.study import MANIFEST_NAME, StudyLimits

MAX_MEMBERS: Final = MAX_ZIP_MEMBERS
MAX_DEPTH: Final = 4
MAX_VIEWS: Final = 3
_JUNK: Final = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})


@dataclass
class Expanded:
    """Items found, the bundles among the inputs, and names skipped as not ours."""

    items: list[InputItem] = field(default_factory=list)
    bundles: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_left: int = 0  # what may still be read into memory, all inputs together

    def spend(self, n: int, label: str) -> None:
        self.bytes_left -= n
        if self.bytes_left < 0:
            raise InputError(f"the inputs add up to more than {MAX_VIEWS} views' worth of data; send at most one cine "
                             "per view", code=ErrorCode.TOO_LARGE, field=label)


def _skip(name: str) -> bool:
    return name.startswith(".") or name in _JUNK


def _read_file(p: Path, limits: StudyLimits, label: str, out: Expanded) -> bytes:
    size = p.stat().st_size
    if size > max_file_bytes(limits):
        raise InputError(f"{label} is {size} bytes, beyond the {max_file_bytes(limits)}-byte limit",
                         code=ErrorCode.TOO_LARGE, field=label)
    out.spend(size, label)
    return p.read_bytes()


def _add(out: Expanded, name: str, relpath: str, folder: str, data: bytes, *, direct: bool) -> None:
    fmt = sniff(data, name)
    if fmt in (Format.UNKNOWN, Format.GZIP) or (fmt == Format.ZIP and not direct):
        if direct:
            raise InputError(f"{name} is not a format Echo4D reads (DICOM, MP4/AVI, NIfTI, .npy, PNG, zip or a "
                             "study bundle)", code=ErrorCode.UNSUPPORTED_FORMAT, field=name)
        out.skipped.append(relpath)
        return
    out.items.append(InputItem(name=name, relpath=relpath, folder=folder, data=data, fmt=fmt))


def _expand_zip(p: Path, out: Expanded, limits: StudyLimits) -> None:
    with open_zip(p, p.name) as zf:
        files = check_zip_entries(zf, p.name)  # count, traversal, symlinks, duplicates: before any inflation
        if any(n.name == MANIFEST_NAME and len(n.parts) <= 2 for n in map(PurePosixPath, files)):
            out.bundles.append(p)
            return
        for name, info in files.items():
            member = PurePosixPath(name)
            if any(_skip(part) for part in member.parts) or len(member.parts) > MAX_DEPTH + 1:
                continue
            if info.file_size > max_file_bytes(limits):
                raise InputError(f"{p.name}: a member is {info.file_size} bytes, beyond the limit",
                                 code=ErrorCode.TOO_LARGE, field=p.name)
            if info.file_size > out.bytes_left:
                raise InputError(f"{p.name} inflates beyond the size limits", code=ErrorCode.UNSAFE_ARCHIVE,
                                 field=p.name)
            out.spend(info.file_size, p.name)
            data = read_zip_member(zf, info, max_file_bytes(limits), p.name)  # bounded, streamed
            rel = f"{p.stem}/{member}"
            folder = str(PurePosixPath(rel).parent)
            _add(out, member.name, rel, folder, data, direct=False)


def _expand_dir(p: Path, out: Expanded, limits: StudyLimits) -> None:
    if (p / MANIFEST_NAME).is_file():
        out.bundles.append(p)
        return
    count = 0
    for f in sorted(p.rglob("*")):
        rel = f.relative_to(p)
        if any(_skip(part) for part in rel.parts) or len(rel.parts) > MAX_DEPTH or not f.is_file() or f.is_symlink():
            continue
        count += 1
        if count > MAX_MEMBERS:
            raise InputError(f"{p.name}/ holds more than {MAX_MEMBERS} files", code=ErrorCode.TOO_LARGE, field=p.name)
        relpath = f"{p.name}/{rel.as_posix()}"
        _add(out, f.name, relpath, str(PurePosixPath(relpath).parent), _read_file(f, limits, relpath, out),
             direct=False)


def expand_paths(paths: list[Path], limits: StudyLimits) -> Expanded:
    """Read every input into memory (capped) and sniff its format."""
    out = Expanded(bytes_left=MAX_VIEWS * max_file_bytes(limits))
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            _expand_dir(p, out, limits)
        elif p.is_file():
            with p.open("rb") as f:
                is_zip = sniff(f.read(8), p.name) == Format.ZIP
            if is_zip:
                _expand_zip(p, out, limits)
            else:
                _add(out, p.name, p.name, "", _read_file(p, limits, p.name, out), direct=True)
        else:
            raise InputError(f"input {p.name} does not exist", code=ErrorCode.INVALID_STUDY, field=p.name)
    return out
