"""What ingest did to each input: provenance, chosen spacing/timing/view, and warnings.

The report lands in ``Study.meta["ingest"]`` (and so in ``study.json`` and the job report).
It never holds patient data: no file names, no DICOM patient-module values, no UIDs; a
source is named by its position and format, and optional identifiers are salted hashes
(:mod:`models.ingest.privacy`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Final

logger = logging.getLogger(__name__)

REPORT_FORMAT: Final = "echo4d-ingest/1"


@dataclass
class SourceReport:
    """Provenance of one decoded input (a file, a PNG folder or a DICOM series)."""

    index: int
    format: str
    kind: str = "masks"  # "masks" (label maps supplied) or "images" (B-mode, segmented here)
    view: str | None = None
    view_source: str | None = None
    n_frames: int | None = None
    shape: tuple[int, int] | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    spacing_source: str | None = None
    fps: float | None = None
    fps_source: str | None = None
    segmenter: str | None = None
    used: bool = True
    series_id: str | None = None  # salted hash, only when a salt was given
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How messages name this source: ``input 2 (DICOM)``, never by its file name."""
        return f"input {self.index} ({self.format})"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "format": self.format,
            "kind": self.kind,
            "view": self.view,
            "view_source": self.view_source,
            "n_frames": self.n_frames,
            "shape": list(self.shape) if self.shape else None,
            "pixel_spacing_mm": list(self.pixel_spacing_mm) if self.pixel_spacing_mm else None,
            "spacing_source": self.spacing_source,
            "fps": self.fps,
            "fps_source": self.fps_source,
            "segmenter": self.segmenter,
            "used": self.used,
        }
        if self.series_id is not None:
            out["series_id"] = self.series_id
        out.update(self.extra)
        return out


@dataclass
class IngestReport:
    """Everything ingest decided, in plain JSON-able form (``to_dict``)."""

    sources: list[SourceReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
        """Record a warning (kept in the report and logged; never holds patient data)."""
        if message not in self.warnings:
            self.warnings.append(message)
            logger.info("ingest warning: %s", message)

    def add_source(self, fmt: str) -> SourceReport:
        src = SourceReport(index=len(self.sources) + 1, format=fmt)
        self.sources.append(src)
        return src

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT,
            "sources": [s.to_dict() for s in self.sources],
            "warnings": list(self.warnings),
        }
