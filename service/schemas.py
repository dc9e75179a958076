"""HTTP-only API shapes (pydantic), with OpenAPI examples. The job resource itself is :mod:`jobcore.resource`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from jobcore.resource import JobOut


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= to get the next (older) page.")


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
