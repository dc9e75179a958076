"""``POST /v1/dicomweb/studies[/{study}]``: DICOMweb STOW-RS, one reconstruction job per StudyInstanceUID."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from jobcore.resource import Problem
from models.profiles import ProfileName
from service.api.deps import PrincipalDep, ServicesDep
from service.auth import Principal
from service.context import Services
from service.stow import (
    Instance,
    check_content_type,
    close_parts,
    group_by_study_quietly,
    receive_parts,
    stow_response,
    study_idempotency_key,
)
from service.submission import InputPart, NewSubmission, submit
from service.validation import check_idempotency_key, check_profile

router = APIRouter(prefix="/v1/dicomweb", tags=["dicomweb"])
DICOM_JSON = "application/dicom+json"
RETRY_HEADER = "Echo4D-Replaces"
"""Response header listing the failed/cancelled jobs that re-sent instances replaced with new jobs."""
_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "All instances stored; one job per study (RetrieveURL = the job's absolute URL)",
          "content": {DICOM_JSON: {}}},
    202: {"description": "Some instances failed (FailedSOPSequence)", "content": {DICOM_JSON: {}}},
    409: {"description": "No instance could be stored", "content": {DICOM_JSON: {}}},
    415: {"model": Problem, "description": "Not multipart/related; type=application/dicom"},
    422: {"model": Problem, "description": "A study lacks a view, spacing, timing or frames (stable code in `code`)"},
}


def _submit_studies(services: Services, principal: Principal, grouped_studies: dict[str, list[Instance]],
                    profile: str, client_key: str | None, view: str | None, base_url: str
                    ) -> tuple[list[tuple[Instance, str]], dict[str, str]]:
    """Check every study's headers (view, spacing, timing, frames: 422 before any job exists), then submit one
    job per study; returns (instance, job URL) pairs and response headers saying which studies were replays of a
    live or succeeded job and which failed/cancelled jobs a retry replaced."""
    from models.ingest.preflight import preflight_files

    manifest = {"view": view} if view else None
    for instances in grouped_studies.values():
        preflight_files([(f"{i:04d}.dcm", inst.part.file) for i, inst in enumerate(instances)], manifest)
    sidecars: dict[str, object] = {"manifest.json": manifest} if manifest else {}
    key_material = f"{client_key or ''}\nview={view}" if view else client_key
    stored: list[tuple[Instance, str]] = []
    replayed: list[bool] = []
    replaced: list[str] = []
    pepper = services.pepper
    for instances in grouped_studies.values():
        parts = [InputPart(f"files/{i:04d}.dcm", inst.part.file, inst.part.size, "application/dicom")
                 for i, inst in enumerate(instances)]
        key = study_idempotency_key(pepper, instances, key_material)
        names = [f"{i:04d}.dcm" for i in range(len(parts))]
        job, created, replaces = submit(services, principal.tenant_id,
                                        NewSubmission("dicom", parts, profile, None, key,
                                                      {"names.json": names, **sidecars},
                                                      retry_failed=True))
        stored.extend((inst, f"{base_url}/v1/jobs/{job.id}") for inst in instances)
        replayed.append(not created)
        if replaces is not None:
            replaced.append(replaces)
    headers = {}
    if replayed and all(replayed):
        headers["Idempotent-Replayed"] = "true"
    if replaced:
        headers[RETRY_HEADER] = ",".join(f"{base_url}/v1/jobs/{j}" for j in replaced)
    return stored, headers


async def _stow(request: Request, services: Services, principal: Principal, study: str | None,
                profile: str | None, idempotency_key: str | None, view: str | None) -> JSONResponse:
    boundary = check_content_type(request.headers.get("content-type"))
    chosen_profile = check_profile(profile, services.settings)
    client_key = check_idempotency_key(idempotency_key)
    parts = await receive_parts(request.stream(), boundary, services.settings.max_upload_files)
    try:
        grouped = await run_in_threadpool(group_by_study_quietly, parts, study)
        base_url = (services.settings.public_base_url or str(request.base_url)).rstrip("/")
        stored, headers = await run_in_threadpool(_submit_studies, services, principal, grouped.studies,
                                                  chosen_profile, client_key, view, base_url)
    finally:
        close_parts(parts)
    urls = sorted({url for _, url in stored})
    body = stow_response(stored, grouped.failed, urls[0] if len(urls) == 1 else None)
    status = 200 if not grouped.failed else (202 if stored else 409)
    if len(urls) == 1:
        headers["Location"] = urls[0]
    return JSONResponse(body, status_code=status, media_type=DICOM_JSON, headers=headers)


Profile = Annotated[ProfileName | None, Query(description="Reconstruction profile (default: the server's).")]
IdemKey = Annotated[str | None, Header(alias="Idempotency-Key")]
View = Annotated[str | None, Query(pattern="^(A4C|A2C|A3C)$",
                                   description="Apical view of instances whose header does not name it (no view "
                                               "code or series description): A4C, A2C or A3C.")]


@router.post("/studies", responses=_RESPONSES, summary="STOW-RS: store instances of one or more studies",
             response_class=JSONResponse)
async def stow_studies(request: Request, services: ServicesDep, principal: PrincipalDep, profile: Profile = None,
                       idempotency_key: IdemKey = None, view: View = None) -> JSONResponse:
    return await _stow(request, services, principal, None, profile, idempotency_key, view)


@router.post("/studies/{study}", responses=_RESPONSES,
             summary="STOW-RS: store instances of the study named in the URL", response_class=JSONResponse)
async def stow_study(request: Request, services: ServicesDep, principal: PrincipalDep,
                     study: Annotated[str, Path(max_length=64, pattern=r"^[0-9.]+$")], profile: Profile = None,
                     idempotency_key: IdemKey = None, view: View = None) -> JSONResponse:
    return await _stow(request, services, principal, study, profile, idempotency_key, view)
