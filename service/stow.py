"""DICOMweb STOW-RS plumbing: stream a multipart/related body to temp files, group instances by study.

Only three header tags of each instance are read here (StudyInstanceUID, SOPInstanceUID,
SOPClassUID; pixels are left to the worker). UIDs appear in the STOW-RS response, as the
standard requires, but never in logs, object keys or metrics; the per-study idempotency key
is a keyed hash of them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import tempfile
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import structlog
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from models.errors import ErrorCode, InputError
from service.errors import UnsupportedMediaType

DICOM_MEDIA_TYPE = "application/dicom"
SPOOL_PART_BYTES = 64 * 1024  # a part larger than this goes to a temp file on disk
SPOOL_REQUEST_BYTES = 4 * 1024 * 1024  # at most this much of one request's parts is held in memory
FAILURE_CANNOT_UNDERSTAND = 0xC000
FAILURE_STUDY_MISMATCH = 0xA900
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")  # PS3.5 9.1 (at most 64 characters)
log = structlog.get_logger(__name__)


@dataclass
class ReceivedPart:
    file: BinaryIO
    size: int = 0
    content_type: str = ""


@dataclass
class Instance:
    part: ReceivedPart
    study_uid: str
    sop_instance_uid: str
    sop_class_uid: str


@dataclass
class Grouped:
    studies: dict[str, list[Instance]] = field(default_factory=dict)
    failed: list[tuple[str, str, int]] = field(default_factory=list)  # (class uid, instance uid, reason)


def check_content_type(header: str | None) -> bytes:
    """The boundary of a ``multipart/related; type="application/dicom"`` body, else 415."""
    mime, params = parse_options_header(header or "")
    if mime.lower() != b"multipart/related" or b"boundary" not in params:
        raise UnsupportedMediaType('STOW-RS needs Content-Type: multipart/related; type="application/dicom"')
    kind = params.get(b"type", DICOM_MEDIA_TYPE.encode()).decode("latin-1").lower()
    if kind != DICOM_MEDIA_TYPE:
        raise UnsupportedMediaType(f"only {DICOM_MEDIA_TYPE} parts are accepted (got type={kind})")
    return bytes(params[b"boundary"])


async def receive_parts(body: AsyncIterator[bytes], boundary: bytes, max_parts: int) -> list[ReceivedPart]:
    """Stream the request body into one spooled temp file per part (never the whole body in memory)."""
    parts: list[ReceivedPart] = []
    header_field = bytearray()
    header_value = bytearray()
    headers: dict[str, str] = {}

    def on_part_begin() -> None:
        if len(parts) >= max_parts:
            raise InputError(f"at most {max_parts} instances per request", code=ErrorCode.TOO_LARGE, field="body")
        headers.clear()
        in_memory = len(parts) < SPOOL_REQUEST_BYTES // SPOOL_PART_BYTES  # later parts go straight to disk
        spool: Any = (tempfile.SpooledTemporaryFile(max_size=SPOOL_PART_BYTES) if in_memory  # noqa: SIM115
                      else tempfile.TemporaryFile())  # noqa: SIM115
        parts.append(ReceivedPart(spool))

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[header_field.decode("latin-1").lower()] = header_value.decode("latin-1").strip()
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        parts[-1].content_type = headers.get("content-type", DICOM_MEDIA_TYPE).split(";")[0].strip().lower()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].file.write(data[start:end])
        parts[-1].size += end - start

    callbacks: Any = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                      "on_header_value": on_header_value, "on_header_end": on_header_end,
                      "on_headers_finished": on_headers_finished, "on_part_data": on_part_data}
    parser = MultipartParser(boundary, callbacks)
    try:
        async for chunk in body:  # the body's own errors (413 over the limit, 408 idle) pass through as they are
            _feed(parser, chunk)
        _feed(parser, None)
    except BaseException:
        close_parts(parts)
        raise
    complete = parser.state == MultipartState.END
    if not complete:
        close_parts(parts)
        raise InputError("the multipart/related body is truncated (no closing boundary)", code=ErrorCode.CORRUPT_FILE,
                         field="body")
    if not parts:
        raise InputError("the request holds no DICOM instance", code=ErrorCode.INVALID_STUDY, field="body")
    for p in parts:
        p.file.seek(0)
    return parts


def _feed(parser: MultipartParser, chunk: bytes | None) -> None:
    """Write ``chunk`` to the parser (None: finalize); a malformed body → CORRUPT_FILE."""
    try:
        if chunk is None:
            parser.finalize()
        else:
            parser.write(chunk)
    except InputError:
        raise
    except Exception as exc:  # python-multipart raises its own error types on malformed bodies
        raise InputError("the multipart/related body is malformed or truncated", code=ErrorCode.CORRUPT_FILE,
                         field="body") from exc


def group_by_study(parts: list[ReceivedPart], only_study: str | None = None) -> Grouped:
    """Read the UID tags of each part; unreadable or non-DICOM parts, and malformed UIDs (a length that runs over
    the next elements would quote them into the response), become failures (0xC000)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    grouped = Grouped()
    tags = ["StudyInstanceUID", "SOPInstanceUID", "SOPClassUID"]
    for part in parts:
        part.file.seek(0)
        try:
            if part.content_type != DICOM_MEDIA_TYPE:
                raise InvalidDicomError("not application/dicom")
            ds = pydicom.dcmread(part.file, stop_before_pixels=True, specific_tags=tags)
            study, sop, klass = (str(ds.get(t, "") or "") for t in tags)
            if not all(len(u) <= 64 and _UID_RE.match(u) for u in (study, sop, klass or "0")):
                raise InvalidDicomError("missing or malformed UIDs")
        except Exception:
            grouped.failed.append(("", "", FAILURE_CANNOT_UNDERSTAND))
            continue
        finally:
            part.file.seek(0)
        if only_study is not None and study != only_study:
            grouped.failed.append((klass, sop, FAILURE_STUDY_MISMATCH))
            continue
        grouped.studies.setdefault(study, []).append(Instance(part, study, sop, klass))
    return grouped


def group_by_study_quietly(parts: list[ReceivedPart], only_study: str | None = None) -> Grouped:
    """:func:`group_by_study` with pydicom's warnings captured: they quote invalid element values, which may be
    the patient's (a UID whose length runs over PatientName). They are counted in one log line, never quoted."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grouped = group_by_study(parts, only_study)
    if caught:
        log.info("dicom_parse_warnings", count=len(caught), categories=sorted({w.category.__name__ for w in caught}))
    return grouped


def study_idempotency_key(pepper: str, instances: list[Instance], client_key: str | None) -> str:
    """Same study + same instances (+ same client key) → same job; a keyed hash, never the UIDs."""
    material = "\n".join([instances[0].study_uid, *sorted(i.sop_instance_uid for i in instances), client_key or ""])
    return "stow:" + hmac.new(pepper.encode() or b"echo4d", material.encode(), hashlib.sha256).hexdigest()[:48]


def _uid(value: str) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def stow_response(stored: list[tuple[Instance, str]], failed: list[tuple[str, str, int]],
                  single_study_url: str | None) -> dict[str, Any]:
    """The DICOM JSON STOW-RS response (PS3.18 10.5.3): Referenced/Failed SOP Sequences, RetrieveURL = job URL."""
    body: dict[str, Any] = {}
    if single_study_url:
        body["00081190"] = {"vr": "UR", "Value": [single_study_url]}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": [
            {"00081150": _uid(k), "00081155": _uid(s), "00081197": {"vr": "US", "Value": [reason]}}
            for k, s, reason in failed]}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": [
            {"00081150": _uid(i.sop_class_uid), "00081155": _uid(i.sop_instance_uid),
             "00081190": {"vr": "UR", "Value": [url]}} for i, url in stored]}
    return body


def close_parts(parts: list[ReceivedPart]) -> None:
    for p in parts:
        p.file.close()
