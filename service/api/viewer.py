"""The web viewer: a job list page and a page per job, plain HTML + ES modules served from ``service/viewer/static``.

The pages hold no data and need no key to load: they ask for the API key once, keep it in the tab's
``sessionStorage`` and send it as ``X-API-Key`` to the same ``/v1`` endpoints every client uses (the key never
goes in a URL). three.js is copied from the npm package at install/build time (``service/viewer/build.mjs``),
never loaded from a CDN: hospital networks have no internet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from models.errors import ErrorCode
from service.errors import ServiceUnavailable

STATIC_DIR: Final[Path] = Path(__file__).resolve().parent.parent / "viewer" / "static"
STATIC_PREFIX: Final[str] = "/v1/viewer/static"
VENDOR_MARKER: Final[Path] = STATIC_DIR / "vendor" / "three" / "build" / "three.module.js"
# no inline script, no third-party origin; blob: for the mask canvases' images
PAGE_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["viewer"])
JobId = Annotated[str, PathParam(max_length=64, description="Job id returned by POST /v1/studies.")]
_HTML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "The page (it asks for the API key, then calls the API)"}}


def viewer_ready() -> str | None:
    """None when the viewer's three.js files are in place, else why not (the pages answer 503 with it)."""
    if not VENDOR_MARKER.is_file():
        return ("the web viewer's three.js files are not built: run `make install` (needs npm) or "
                "`npm ci && npm run build` in service/viewer")
    return None


def _page(name: str) -> FileResponse:
    reason = viewer_ready()
    if reason:
        raise ServiceUnavailable(reason, code=ErrorCode.INTERNAL)
    return FileResponse(STATIC_DIR / name, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@router.get("/v1/viewer", response_class=FileResponse, responses=_HTML,
            summary="Web viewer: the job list (with progress), and the built-in sample case for newcomers")
def viewer_jobs() -> FileResponse:
    return _page("index.html")


@router.get("/v1/jobs/{job_id}/viewer", response_class=FileResponse, responses=_HTML,
            summary="Web viewer of one job: the beating mesh, volume curve, EDV/ESV/SV/EF, masks with fitted contours")
def viewer_job(job_id: JobId) -> FileResponse:
    return _page("job.html")


class ViewerStatic(StaticFiles):
    """The viewer's scripts, styles and vendored three.js, with the pages' security headers."""

    async def get_response(self, path: str, scope: Scope):  # type: ignore[no-untyped-def]
        response = await super().get_response(path, scope)
        response.headers.update({k: v for k, v in PAGE_HEADERS.items() if k != "Cache-Control"})
        return response


def static_files() -> ViewerStatic:
    return ViewerStatic(directory=STATIC_DIR, check_dir=False)
