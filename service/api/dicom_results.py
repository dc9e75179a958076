"""``GET /v1/jobs/{id}/dicom``: a job's DICOM results as one ``multipart/related; type="application/dicom"``
response, the media type of a DICOMweb WADO-RS "retrieve study" (PS3.18), so a DICOMweb client or a
PACS integrator can read it with the code it already has and forward each part as it is.

The parts, in this order: the Comprehensive 3D SR (EDV/ESV/SV/EF), the Encapsulated STL of the ED
mesh, the multi-frame Secondary Capture of the beating mesh and the Secondary Capture of the preview.
The worker built them at export time (``models.export.dicom_writer``); this route only streams the
stored objects, with the same key, tenant and 404 rules as the other job routes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Path
from fastapi.responses import StreamingResponse

from jobcore.artifacts import DICOM_ARTIFACTS
from jobcore.db.models import JobStatus
from jobcore.resource import Problem
from jobcore.storage import ObjectStore
from service.api.deps import JobsDep, PrincipalDep, StoreDep
from service.errors import NotAcceptable, NotFound

router = APIRouter(prefix="/v1/jobs", tags=["artifacts"])
MEDIA_TYPE = 'multipart/related; type="application/dicom"'
_PROBLEM: dict[str, dict[str, object]] = {"application/problem+json": {}}


def _acceptable(accept: str | None) -> bool:
    """True when ``Accept`` is absent or admits multipart/related with DICOM parts (or anything)."""
    if not accept:
        return True
    for item in accept.split(","):
        media, *params = (p.strip().lower() for p in item.split(";"))
        if media in ("*/*", "multipart/*"):
            return True
        if media == "multipart/related":
            types = [p.split("=", 1)[1].strip('"') for p in params if p.startswith("type=")]
            if not types or types[0] == "application/dicom":
                return True
    return False


def _stream(store: ObjectStore, keys: list[str], boundary: str) -> Iterator[bytes]:
    for key in keys:
        yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        yield from store.iter_bytes(key)
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


@router.get(
    "/{job_id}/dicom",
    response_class=StreamingResponse,
    responses={200: {"description": "The DICOM results, one application/dicom part each: SR, Encapsulated STL, "
                                    "Secondary Captures", "content": {MEDIA_TYPE: {}}},
               404: {"model": Problem, "content": _PROBLEM,
                     "description": "No such job for this tenant, or it has no DICOM results (not succeeded)"},
               406: {"model": Problem, "content": _PROBLEM,
                     "description": "Accept admits no multipart/related; type=application/dicom"}},
    summary="The job's DICOM results (SR, STL, Secondary Captures) in the source study, for a PACS",
)
def get_dicom_results(
    job_id: Annotated[str, Path(max_length=64)], principal: PrincipalDep, jobs: JobsDep, store: StoreDep,
    accept: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    job = jobs.get(job_id, principal.tenant_id)
    if job is None:
        raise NotFound("no such job", field="job_id")
    if not _acceptable(accept):
        raise NotAcceptable(f"the DICOM results are served as {MEDIA_TYPE} only", field="accept")
    stored = job.artifacts if job.status == JobStatus.SUCCEEDED.value else {}
    keys = [str(stored[name]["key"]) for name in DICOM_ARTIFACTS if name in stored]
    if not keys:
        raise NotFound("this job has no DICOM results (they exist once it succeeded)", field="job_id")
    if any(store.stat(key) is None for key in keys):
        raise NotFound("a DICOM result is missing from the store", field="job_id")
    boundary = f"echo4d-{uuid.uuid4().hex}"
    return StreamingResponse(_stream(store, keys, boundary), media_type=f"{MEDIA_TYPE}; boundary={boundary}",
                             headers={"Cache-Control": "private, no-store"})
