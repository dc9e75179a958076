"""DICOM results of a job: build them at export time (models.export.dicom_writer), push them after upload.

Export: the source study is read from the job's input files (only four UIDs per DICOM header, see
``models.export.dicom_common``); the job id seeds every UID, so a retried job produces the same
instances. The objects are stored as artifacts like the other outputs and served by
``GET /v1/jobs/{id}/dicom``.

Push (optional, after the upload): to a C-STORE peer (``ECHO4D_DICOM_PUSH_HOST`` ...) and/or a
DICOMweb STOW-RS endpoint (``ECHO4D_DICOM_STOW_URL``). A push that fails does not fail the job (its
results are stored and can be fetched again); the outcome of each push is recorded in the job's
``summary.dicom_push`` and logged without any UID.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from jobcore.settings import Settings

log = structlog.get_logger(__name__)
STOW_CONTENT_TYPE = 'multipart/related; type="application/dicom"'


def export_dicom(result: Any, input_paths: list[Path], out_dir: Path, job_id: str,
                 preview_png: Path | None, simpson: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write ``out_dir/dicom/*.dcm`` for ``result`` in the inputs' study; returns {``dicom/<name>``: path}.
    ``simpson``: the report's Simpson biplane values (also written in the SR), or None."""
    from models.export.dicom_common import read_sources, target_from_sources
    from models.export.dicom_writer import write_dicom_outputs

    target = target_from_sources(read_sources(input_paths), uid_seed=job_id)
    log.info("dicom_results_built", new_study=target.new_study, source_instances=len(target.sources))
    return write_dicom_outputs(result, out_dir, target, datetime.now(UTC), preview_png, simpson)


def push_configured(settings: Settings) -> bool:
    return settings.dicom_push_host is not None or settings.dicom_stow_url is not None


def push_dicom(settings: Settings, files: list[Path]) -> dict[str, Any]:
    """Push ``files`` to every configured peer; {``c_store``|``stow_rs``: {ok, sent, detail}} (empty: none set)."""
    outcome: dict[str, Any] = {}
    if settings.dicom_push_host is not None:
        outcome["c_store"] = _attempt("c_store", lambda: c_store(settings, files))
    if settings.dicom_stow_url is not None:
        outcome["stow_rs"] = _attempt("stow_rs", lambda: stow_rs(settings, files))
    return outcome


def _attempt(kind: str, push: Callable[[], tuple[int, str]]) -> dict[str, Any]:
    try:
        sent, detail = push()
    except Exception as exc:  # a push never fails the job: it is recorded and logged instead
        sent, detail = 0, f"{type(exc).__name__}: {str(exc)[:200]}"
        ok = False
    else:
        ok = detail == "ok"
    log.info("dicom_push", kind=kind, ok=ok, sent=sent)
    return {"ok": ok, "sent": sent, "detail": detail}


def c_store(settings: Settings, files: list[Path]) -> tuple[int, str]:
    """C-STORE each file to the configured peer in one association; (instances stored, ``ok`` or why not)."""
    from pydicom import dcmread
    from pynetdicom import AE

    host = settings.dicom_push_host
    if host is None:
        raise ValueError("no C-STORE peer is configured")
    datasets = [dcmread(path) for path in files]
    ae = AE(ae_title=settings.dicom_push_calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = settings.dicom_push_timeout_s
    ae.connection_timeout = settings.dicom_push_timeout_s
    for sop_class, syntax in sorted({(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)) for ds in datasets}):
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(host, settings.dicom_push_port, ae_title=settings.dicom_push_called_ae)
    if not assoc.is_established:
        return 0, "the peer did not accept the association"
    stored, failures = 0, []
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = int(getattr(status, "Status", -1)) if status else -1
            if code in (0x0000, 0xB000, 0xB007, 0xB006):  # success, or success with a coercion warning
                stored += 1
            else:
                failures.append(f"{ds.SOPClassUID.name}: status 0x{code & 0xFFFF:04X}" if code >= 0
                                else f"{ds.SOPClassUID.name}: no response")
    finally:
        assoc.release()
    return stored, "ok" if not failures else "; ".join(failures)


def _multipart(files: list[Path], boundary: str) -> Iterator[bytes]:
    for path in files:
        yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        yield path.read_bytes()
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def stow_rs(settings: Settings, files: list[Path]) -> tuple[int, str]:
    """POST ``files`` to the STOW-RS endpoint as one multipart/related request; (instances sent, ``ok`` or why not)."""
    import httpx

    boundary = f"echo4d-{uuid.uuid4().hex}"
    headers = {"Content-Type": f"{STOW_CONTENT_TYPE}; boundary={boundary}", "Accept": "application/dicom+json"}
    if settings.dicom_stow_token is not None:
        headers["Authorization"] = f"Bearer {settings.dicom_stow_token.get_secret_value()}"
    body = b"".join(_multipart(files, boundary))
    response = httpx.post(str(settings.dicom_stow_url), content=body, headers=headers,
                          timeout=settings.dicom_push_timeout_s)
    if response.status_code == 200:
        return len(files), "ok"
    return 0, f"the STOW-RS endpoint answered HTTP {response.status_code}"
