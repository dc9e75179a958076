"""Cheap up-front checks of a submission (size, type, archive safety, manifest); heavy decoding is the worker's.

Everything here reads at most the zip central directory, a manifest and a few magic bytes.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import PurePosixPath
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from jobcore.addresses import is_private_host, numeric_host
from jobcore.settings import Settings
from models.archive import check_zip_directory, read_zip_member
from models.errors import ErrorCode, InputError
from models.profiles import PROFILES
from models.study import MANIFEST_NAME, StudyLimits, parse_manifest

_S_IFMT, _S_IFLNK = 0o170000, 0o120000
_IDEMPOTENCY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
# extensions the ingest stage understands (besides study bundles); DICOM may also have none.
INGEST_EXTENSIONS = (".npy", ".nii", ".nii.gz", ".png", ".dcm", ".dicom", ".mp4", ".avi", ".mov", ".mkv", ".webm",
                     ".gif", ".json")
_MANIFEST_LIMIT = StudyLimits().max_manifest_bytes
_MEMBER_LIMIT = StudyLimits().max_voxels_per_view + 64 * 1024  # one mask cine .npy at the size limit


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not _IDEMPOTENCY_RE.match(key):
        raise InputError("Idempotency-Key must be 1-255 visible ASCII characters", code=ErrorCode.VALIDATION_FAILED,
                         field="Idempotency-Key")
    return key


def check_profile(profile: str | None, settings: Settings) -> str:
    value = profile or settings.default_profile
    if value not in PROFILES:
        raise InputError(f"profile must be one of {', '.join(PROFILES)}", code=ErrorCode.VALIDATION_FAILED,
                         field="profile")
    return value


def check_callback_url(url: str | None, settings: Settings) -> str | None:
    """An http(s) URL; literal private/loopback addresses only when the settings allow them."""
    if not url:
        return None
    if settings.webhook_secret is None:
        raise InputError("webhooks are disabled on this server (no ECHO4D_WEBHOOK_SECRET)",
                         code=ErrorCode.VALIDATION_FAILED, field="callback_url")
    parts = urlsplit(url)
    if len(url) > 2000 or parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        raise InputError("callback_url must be an http(s) URL without credentials", code=ErrorCode.VALIDATION_FAILED,
                         field="callback_url")
    canonical = numeric_host(parts.hostname)
    if canonical is not None:  # 2130706433, 0177.0.0.1, 127.1, 0x7f000001 → 127.0.0.1 (checked and stored so)
        host = f"[{canonical}]" if canonical.version == 6 else str(canonical)
        url = parts._replace(netloc=host + (f":{parts.port}" if parts.port is not None else "")).geturl()
    if not settings.webhook_allow_private and is_private_host(parts.hostname):
        raise InputError("callback_url must not point at a private or loopback address",
                         code=ErrorCode.VALIDATION_FAILED, field="callback_url")
    return url


def _unsafe_member(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or "\\" in name or re.match(r"^[A-Za-z]:", name):
        return "an absolute or parent-relative path"
    if (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
        return "a symbolic link"
    if info.flag_bits & 0x1:
        return "an encrypted member"
    return None


def check_study_zip(f: BinaryIO, settings: Settings) -> dict[str, Any]:
    """Validate a study bundle zip from its central directory and manifest; returns the manifest."""
    f.seek(0)
    if not zipfile.is_zipfile(f):
        raise InputError("file is not a zip archive (a study bundle is a zip holding study.json)",
                         code=ErrorCode.UNSUPPORTED_FORMAT, field="file")
    check_zip_directory(f, "file", settings.max_zip_entries)  # before zipfile builds one object per entry
    f.seek(0)
    try:
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            if len(infos) > settings.max_zip_entries:
                raise InputError(f"the zip has {len(infos)} members; at most {settings.max_zip_entries} allowed",
                                 code=ErrorCode.UNSAFE_ARCHIVE, field="file")
            total = 0
            for info in infos:
                why = _unsafe_member(info)
                if why:
                    raise InputError(f"the zip holds {why}", code=ErrorCode.UNSAFE_ARCHIVE, field="file")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise InputError("the zip uses a compression method other than deflate or none; re-zip it with "
                                     "defaults", code=ErrorCode.UNSUPPORTED_FORMAT, field="file")
                total += info.file_size
                if info.file_size > _MEMBER_LIMIT:
                    raise InputError(f"a zip member expands to {info.file_size} bytes; at most {_MEMBER_LIMIT}",
                                     code=ErrorCode.UNSAFE_ARCHIVE, field="file")
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > 1024 * 1024 and ratio > settings.max_compression_ratio:
                    raise InputError("a zip member expands more than the allowed compression ratio",
                                     code=ErrorCode.UNSAFE_ARCHIVE, field="file")
            if total > settings.max_uncompressed_bytes:
                raise InputError(f"the zip expands to {total} bytes; at most {settings.max_uncompressed_bytes}",
                                 code=ErrorCode.TOO_LARGE, field="file")
            files = {i.filename: i for i in infos if not i.is_dir()}
            manifests = [n for n in files
                         if PurePosixPath(n).name == MANIFEST_NAME and len(PurePosixPath(n).parts) <= 2]
            if len(manifests) != 1:
                raise InputError("the zip must contain exactly one study.json (at its root or in one folder)",
                                 code=ErrorCode.INVALID_MANIFEST, field=MANIFEST_NAME)
            raw = read_zip_member(zf, files[manifests[0]], _MANIFEST_LIMIT, MANIFEST_NAME)  # stored/deflate only
            doc = parse_manifest(raw)
            prefix = str(PurePosixPath(manifests[0]).parent)
            prefix = "" if prefix == "." else prefix + "/"
            for view, spec in doc["views"].items():
                if prefix + spec["masks"] not in files:
                    raise InputError(f"{spec['masks']} named by views.{view}.masks is not in the zip",
                                     code=ErrorCode.INVALID_STUDY, field=f"views.{view}.masks")
            return doc
    except zipfile.BadZipFile as exc:
        raise InputError("the zip archive is corrupt or truncated", code=ErrorCode.CORRUPT_FILE, field="file") from exc
    finally:
        f.seek(0)


def file_extension(name: str, head: bytes) -> str:
    """Normalised extension of an uploaded file (``.dcm`` for extension-less DICOM), or raise."""
    lower = name.lower()
    for ext in sorted(INGEST_EXTENSIONS, key=len, reverse=True):
        if lower.endswith(ext):
            return ".dcm" if ext == ".dicom" else ext
    if len(head) >= 132 and head[128:132] == b"DICM":
        return ".dcm"
    raise InputError(f"unsupported file type; accepted: {', '.join(INGEST_EXTENSIONS)} or DICOM Part 10",
                     code=ErrorCode.UNSUPPORTED_FORMAT, field="files")


def parse_manifest_field(text: str | None) -> dict[str, Any] | None:
    """The optional ``manifest`` form field: a JSON object of at most 64 KiB."""
    if text is None or text == "":
        return None
    if len(text.encode()) > _MANIFEST_LIMIT:
        raise InputError("manifest is larger than 64 KiB", code=ErrorCode.TOO_LARGE, field="manifest")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"manifest is not valid JSON: {exc.msg}", code=ErrorCode.INVALID_MANIFEST,
                         field="manifest") from None
    except (ValueError, RecursionError):  # 4300+ digit integers, nesting deeper than the parser's stack
        raise InputError("manifest nests too deeply or holds an out-of-range number", code=ErrorCode.INVALID_MANIFEST,
                         field="manifest") from None
    if not isinstance(doc, dict):
        raise InputError("manifest must be a JSON object", code=ErrorCode.INVALID_MANIFEST, field="manifest")
    return doc
