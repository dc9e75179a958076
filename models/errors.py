"""One error hierarchy for the whole product, with stable machine-readable codes.

This module holds the root (:class:`Echo4DError`) and the domain's codes (:class:`ErrorCode`: bad input, model
failures); the platform's codes (store, database, broker, HTTP refusals, jobs the platform ended) and
``TransientError`` are ``jobcore.errors.PlatformCode`` and its errors, subclasses of the same root.
The service maps every :class:`Echo4DError` to an RFC 9457 problem+json response in one
handler (``service/errors.py``); the CLI prints ``code: detail`` and exits non-zero; the
worker marks the job failed with the code. Codes are part of the public API: never rename one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    """Stable error codes of the domain. Grouped by the kind of error that raises them."""

    # Bad input (the client's fault; retrying the same input cannot succeed).
    INVALID_STUDY = "invalid_study"
    INVALID_MANIFEST = "invalid_manifest"
    UNKNOWN_VIEW = "unknown_view"
    MISSING_VIEW = "missing_view"
    BAD_DIMENSIONS = "bad_dimensions"
    BAD_DTYPE = "bad_dtype"
    BAD_SPACING = "bad_spacing"
    BAD_TIMING = "bad_timing"
    EMPTY_MASK = "empty_mask"
    FULL_MASK = "full_mask"
    NO_LV_LABEL = "no_lv_label"
    DISCONNECTED_MASK = "disconnected_mask"
    FRAME_COUNT_MISMATCH = "frame_count_mismatch"
    SINGLE_FRAME = "single_frame"
    TOO_LARGE = "too_large"
    UNSUPPORTED_FORMAT = "unsupported_format"
    UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
    CORRUPT_FILE = "corrupt_file"
    UNSAFE_ARCHIVE = "unsafe_archive"
    NO_SEGMENTER = "no_segmenter"
    NO_CARDIAC_CYCLE = "no_cardiac_cycle"
    # Model / artefact problems (ours, not the client's).
    CHECKPOINT_INVALID = "checkpoint_invalid"
    RECONSTRUCTION_FAILED = "reconstruction_failed"
    # Checks every layer makes (a value out of range, a report that does not validate).
    VALIDATION_FAILED = "validation_failed"
    # A run stopped on request (the cooperative cancel ``models.recon.control`` raises).
    CANCELLED = "cancelled"
    INTERNAL = "internal_error"


class Echo4DError(Exception):
    """Base of every error Echo4D raises on purpose.

    ``detail`` is a sentence a PACS engineer can act on; ``field`` names the offending
    input (``views.A4C.pixel_spacing_mm``, ``A2C.npy``, a DICOM keyword, ...) when there is one.
    Messages never contain patient-identifying values.
    """

    retryable: ClassVar[bool] = False
    default_code: ClassVar[StrEnum] = ErrorCode.INTERNAL

    def __init__(self, detail: str, *, code: StrEnum | None = None, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code: StrEnum = code or self.default_code  # an ErrorCode, or a jobcore.errors.PlatformCode
        self.field = field

    def __str__(self) -> str:
        where = f" [{self.field}]" if self.field else ""
        return f"{self.code.value}{where}: {self.detail}"


class InputError(Echo4DError):
    """The input is wrong; the same input will always fail."""

    default_code = ErrorCode.INVALID_STUDY


class ModelError(Echo4DError):
    """A model artefact (checkpoint) or a reconstruction failed for reasons of ours."""

    default_code = ErrorCode.RECONSTRUCTION_FAILED
