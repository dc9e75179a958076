"""``POST /v1/studies``: accept a study (bundle zip, or files + manifest) and queue a reconstruction job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Request, Response, UploadFile

from jobcore.resource import JobOut, Problem, job_out
from models.errors import ErrorCode, InputError
from models.ingest.preflight import preflight_files
from models.profiles import ProfileName
from service.api.deps import PrincipalDep, ServicesDep
from service.errors import UnsupportedMediaType
from service.submission import InputPart, NewSubmission, submit
from service.validation import (
    check_callback_url,
    check_idempotency_key,
    check_profile,
    check_study_zip,
    file_extension,
    parse_manifest_field,
)

router = APIRouter(prefix="/v1", tags=["studies"])

_PROBLEMS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}, "description": text}
    for code, text in {401: "Missing or invalid API key", 409: "Idempotency-Key reused with another body",
                       413: "Upload larger than the limit", 415: "Not multipart/form-data",
                       422: "Invalid study (stable code in `code`)", 429: "Rate limit exceeded",
                       503: "Database or store unavailable"}.items()
}


def _upload_size(upload: UploadFile) -> int:
    if upload.size is not None:
        return int(upload.size)
    upload.file.seek(0, 2)
    size = upload.file.tell()
    upload.file.seek(0)
    return size


@router.post(
    "/studies", status_code=202, response_model=JobOut, responses=_PROBLEMS,
    summary="Submit a study for 4D reconstruction",
    description=(
        "Multipart upload of either a study bundle (`file`: a zip holding `study.json` and one `.npy` mask cine "
        "per view) or `files` (DICOM, video, NIfTI, PNG or .npy masks) with an optional JSON `manifest`. "
        "Only cheap checks happen here (size, type, archive safety, manifest; from file headers and the manifest: "
        "every source has a view, pixel spacing, frame timing and at least 2 frames, else 422); decoding happens "
        "in the worker. "
        "Answers 202 with the job and a `Location` header. With an `Idempotency-Key` header, repeating the same "
        "request returns the same job (header `Idempotent-Replayed: true`); reusing the key for a different body "
        "is a 409."
    ),
)
def create_study(
    request: Request,
    response: Response,
    principal: PrincipalDep,
    services: ServicesDep,
    file: Annotated[UploadFile | None, File(description="Study bundle zip (echo4d-study/1).")] = None,
    files: Annotated[list[UploadFile] | None, File(description="Input files when not sending a bundle.")] = None,
    manifest: Annotated[str | None, Form(
        description="JSON manifest describing `files` (views, spacing, fps).",
        examples=['{"view": "A4C"}', '{"files": {"a4c.nii.gz": {"view": "A4C", "fps": 25}, '
                  '"a2c.mp4": {"view": "A2C", "pixel_spacing_mm": [0.4, 0.4]}}}'])] = None,
    profile: Annotated[ProfileName | None, Form(description="Reconstruction profile (default: the server's).")] = None,
    callback_url: Annotated[str | None, Form(description="URL POSTed (HMAC-signed) when the job ends.",
                                             examples=["https://pacs-gw.example.org/echo4d/callback"])] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JobOut:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise UnsupportedMediaType("send multipart/form-data with a `file` (bundle zip) or `files` field")
    settings = services.settings
    key = check_idempotency_key(idempotency_key)
    chosen_profile = check_profile(profile, settings)
    callback = check_callback_url(callback_url, settings)
    uploads = [u for u in (files or []) if u.filename or _upload_size(u)]
    if (file is None) == (not uploads):
        raise InputError("send exactly one of `file` (a study bundle zip) or `files`", code=ErrorCode.VALIDATION_FAILED,
                         field="file")
    if file is not None:
        check_study_zip(file.file, settings)
        parts = [InputPart("study.zip", file.file, _upload_size(file), "application/zip")]
        sub = NewSubmission("bundle", parts, chosen_profile, callback, key)
    else:
        if len(uploads) > settings.max_upload_files:
            raise InputError(f"at most {settings.max_upload_files} files per study", code=ErrorCode.TOO_LARGE,
                             field="files")
        parts, names = [], []
        for i, upload in enumerate(uploads):
            head = upload.file.read(132)
            upload.file.seek(0)
            ext = file_extension(upload.filename or "", head)
            parts.append(InputPart(f"files/{i:04d}{ext}", upload.file, _upload_size(upload),
                                   upload.content_type or "application/octet-stream"))
            names.append(upload.filename or f"{i:04d}{ext}")
        kind = "dicom" if all(p.name.endswith(".dcm") for p in parts) else "files"
        doc = parse_manifest_field(manifest)
        preflight_files([(Path(n.replace("\\", "/")).name, u.file) for n, u in zip(names, uploads, strict=True)],
                        doc)
        sidecars = {"names.json": names, **({"manifest.json": doc} if doc is not None else {})}
        sub = NewSubmission(kind, parts, chosen_profile, callback, key, sidecars)
    job, created, _ = submit(services, principal.tenant_id, sub)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return job_out(job)
