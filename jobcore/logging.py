"""Structured logging (structlog → one JSON object per line) with secrets and PHI scrubbed.

Both structlog loggers and the standard ``logging`` module (uvicorn, celery, models/) go
through the same processors. A redaction processor drops values of sensitive keys and masks
anything shaped like an Echo4D API key, so neither keys nor patient identifiers are written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.types import EventDict, Processor

from jobcore.settings import Settings

API_KEY_PATTERN = re.compile(r"e4d_[A-Za-z0-9]{6,}_[A-Za-z0-9_-]{16,}")
_SENSITIVE_KEYS = frozenset({
    "api_key", "key", "authorization", "password", "secret", "token", "pepper", "webhook_secret",
    "patient_name", "patient_id", "patientname", "patientid", "patient_birth_date", "study_instance_uid",
    "sop_instance_uid", "accession_number", "filename", "original_name",
})
REDACTED = "[redacted]"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return API_KEY_PATTERN.sub("e4d_[redacted]", value)
    return value


def redact(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: blank sensitive keys and mask API-key-shaped substrings anywhere."""
    for k in list(event_dict):
        if k.lower() in _SENSITIVE_KEYS:
            event_dict[k] = REDACTED
        else:
            event_dict[k] = _scrub(event_dict[k])
    return event_dict


_WARNING_CATEGORY = re.compile(r":\s*([A-Za-z_]*Warning):")


class WithholdThirdPartyText(logging.Filter):
    """Keep the records of libraries that quote file contents (pydicom quotes invalid element values: a UID whose
    length runs over PatientName carries the name) and of ``warnings.warn`` (routed to ``py.warnings``), but
    replace their text: only the origin and the warning category are logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage() if record.name == "py.warnings" else ""
        category = m.group(1) if (m := _WARNING_CATEGORY.search(text)) else None
        record.msg = f"{record.name} {category or record.levelname.lower()} (text withheld: it may quote input files)"
        record.args = ()
        record.exc_info = record.exc_text = None
        return True


def _rename_event(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event_dict["msg"] = event_dict.pop("event", "")
    return event_dict


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at emit time (survives stream swaps by servers and test runners)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(settings: Settings) -> None:
    """Route structlog and stdlib logging to stderr as JSON (or console) lines. Idempotent."""
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: Processor
    if settings.log_json:
        renderer = structlog.processors.JSONRenderer()
        final: list[Processor] = [structlog.processors.format_exc_info, _rename_event, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        final = [renderer]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_echo4d", False):
            root.removeHandler(old)
    handler._echo4d = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for noisy in ("uvicorn.access", "httpx", "httpcore", "botocore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)  # warnings.warn → the "py.warnings" logger → this handler (never raw stderr)
    for quoting in ("pydicom", "py.warnings"):
        target = logging.getLogger(quoting)
        if not any(isinstance(f, WithholdThirdPartyText) for f in target.filters):
            target.addFilter(WithholdThirdPartyText())
