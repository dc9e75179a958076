"""Ingest: DICOM ultrasound, videos, NIfTI, .npy and PNG inputs → the canonical study bundle.

``load_any(paths, manifest, view=..., segmenter=..., limits=...)`` is the one entry point the
CLI and the worker share; ``ingest(...)`` also returns the grey frames for previews. No torch
at import time (a segmenter is passed in).
"""

from __future__ import annotations

from models.ingest.loader import IngestResult, ingest, load_any
from models.ingest.options import FileOptions, IngestManifest, parse_manifest
from models.ingest.report import IngestReport, SourceReport

__all__ = ["FileOptions", "IngestManifest", "IngestReport", "IngestResult", "SourceReport", "ingest", "load_any",
           "parse_manifest"]
