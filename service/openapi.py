"""The OpenAPI document as the API really answers: every error is ``application/problem+json`` (RFC 9457).

FastAPI documents error responses as ``application/json`` (and validation errors with its own
``HTTPValidationError`` shape), while :func:`service.errors.problem_response` answers every error
with a problem object. This rewrites the generated document once, so clients and schema-driven
tests (schemathesis) see the media type and schema actually served, and adds the errors every
authenticated operation can return (400, 401, 422, 429, 503). FastAPI's unused ``HTTPValidationError`` schema is
dropped and the STOW-RS request body (read by the route itself) is documented.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from jobcore.resource import Problem
from service.errors import PROBLEM_MEDIA_TYPE

PROBLEM_REF = "#/components/schemas/Problem"
_ERROR_SCHEMA_REFS = (PROBLEM_REF, "#/components/schemas/HTTPValidationError")
_COMMON_ERRORS = {
    "400": "Malformed request (e.g. a multipart body that cannot be parsed)",
    "401": "Missing, invalid or revoked API key",
    "422": "Invalid request (stable code in `code`)",
    "429": "Rate limit exceeded (see Retry-After)",
    "503": "Database, object store or broker unavailable (see Retry-After)",
}


def _is_problem(content: dict[str, Any]) -> bool:
    """True for a response documented as an error object (ours or FastAPI's), or with no schema at all."""
    refs = [str(spec.get("schema", {}).get("$ref", "")) for spec in content.values()]
    return PROBLEM_MEDIA_TYPE in content or any(r in _ERROR_SCHEMA_REFS for r in refs) or not any(refs)


def problem_responses(doc: dict[str, Any]) -> dict[str, Any]:
    """Rewrite ``doc`` in place: 4xx/5xx error responses → ``application/problem+json`` with ``Problem``."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}"))
    for operations in doc.get("paths", {}).values():
        for op in operations.values():
            responses = op.setdefault("responses", {})
            if op.get("security"):
                for code, text in _COMMON_ERRORS.items():
                    responses.setdefault(code, {"description": text})
            for code, response in responses.items():
                if not code.isdigit() or int(code) < 400:
                    continue
                content = response.get("content")
                if content and not _is_problem(content):
                    continue  # a documented non-problem body: STOW-RS DICOM JSON, /readyz checks
                response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": PROBLEM_REF}}}
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's error shapes, never answered here
        schemas.pop(unused, None)
    _add_stow_body(doc)
    return doc


def _add_stow_body(doc: dict[str, Any]) -> None:
    """The STOW-RS operations read their body themselves: document it (multipart/related of DICOM parts)."""
    body = {"required": True, "description": "DICOM Part 10 instances, one per part (PS3.18 10.5).",
            "content": {'multipart/related; type="application/dicom"': {"schema": {
                "type": "string", "format": "binary"}}}}
    for path, operations in doc.get("paths", {}).items():
        if path.startswith("/v1/dicomweb/studies") and "post" in operations:
            operations["post"].setdefault("requestBody", body)


def install_problem_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the rewritten document (built once, then cached by FastAPI)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            problem_responses(generate())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
