"""``GET /v1/jobs/{id}/artifacts/{name}``: stream an output (ETag, Range) or redirect to a presigned URL."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from jobcore.artifacts import ARTIFACTS, DOWNLOAD_NAMES
from jobcore.db.models import JobStatus
from jobcore.resource import Problem
from service.api.deps import JobsDep, PrincipalDep, SettingsDep, StoreDep
from service.errors import NotFound, RangeNotSatisfiable

router = APIRouter(prefix="/v1/jobs", tags=["artifacts"])
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
ArtifactName = Annotated[str, Path(description=f"One of: {', '.join(ARTIFACTS)}")]


def _position(digits: str) -> int:
    """A byte position; beyond any object size when it has more digits than int() may parse (a crafted header)."""
    return int(digits) if len(digits) <= 18 else 10**18


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single ``bytes=`` range → inclusive (start, end); None for no/ignored range; 416 if unsatisfiable."""
    if not header:
        return None
    m = _RANGE_RE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None  # multiple or malformed ranges: RFC 9110 lets us answer the whole object
    if m.group(1):
        start = _position(m.group(1))
        end = min(_position(m.group(2)), size - 1) if m.group(2) else size - 1
    else:
        start, end = max(size - _position(m.group(2)), 0), size - 1
    if start >= size or start > end:
        raise RangeNotSatisfiable(f"range not satisfiable for a {size}-byte object",
                                  headers={"Content-Range": f"bytes */{size}"})
    return start, end


@router.get(
    "/{job_id}/artifacts/{name}",
    responses={200: {"description": "The artifact (Range requests answered with 206)"},
               307: {"description": "Redirect to a short-lived presigned URL (MinIO store)"},
               404: {"model": Problem, "description": "No such job/artifact for this tenant"}},
    summary="Download an output: report.json, mesh.glb, meshes (zip of .pvd + .vtp), ed.ply, es.ply, preview.png",
)
def get_artifact(
    job_id: Annotated[str, Path(max_length=64)], name: ArtifactName, request: Request,
    principal: PrincipalDep, jobs: JobsDep, store: StoreDep, settings: SettingsDep,
) -> Response:
    job = jobs.get(job_id, principal.tenant_id)
    if job is None:
        raise NotFound("no such job", field="job_id")
    meta = job.artifacts.get(name) if job.status == JobStatus.SUCCEEDED.value else None
    if name not in ARTIFACTS or meta is None:
        shown = name if len(name) <= 40 else name[:40] + "…"  # never echo kilobytes of a crafted path
        raise NotFound(f"no artifact {shown!r} for this job (available once it succeeded: {', '.join(ARTIFACTS)})",
                       field="name")
    key, etag, content_type = str(meta["key"]), str(meta["etag"]), str(meta["content_type"])
    download = DOWNLOAD_NAMES.get(name, name)
    if store.kind == "minio" and settings.s3_presign:
        url = store.presigned_url(key, settings.presign_ttl_s, download)
        if url:
            return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    info = store.stat(key)
    if info is None:
        raise NotFound("the artifact is missing from the store", field="name")
    headers = {"ETag": f'"{etag}"', "Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600",
               "Content-Disposition": f'attachment; filename="{download}"'}
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    byte_range = None
    if_range = request.headers.get("if-range")
    if if_range is None or if_range.strip() == f'"{etag}"':
        byte_range = parse_range(request.headers.get("range"), info.size)
    if byte_range is None:
        headers["Content-Length"] = str(info.size)
        return StreamingResponse(store.iter_bytes(key), media_type=content_type, headers=headers)
    start, end = byte_range
    headers |= {"Content-Range": f"bytes {start}-{end}/{info.size}", "Content-Length": str(end - start + 1)}
    return StreamingResponse(store.iter_bytes(key, start, end), status_code=206, media_type=content_type,
                             headers=headers)


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    return header.strip() == "*" or any(t.strip().removeprefix("W/") == f'"{etag}"' for t in header.split(","))
