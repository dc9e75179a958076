"""Privacy rules of ingest: which DICOM values never leave the reader, and salted identifiers.

Ingest copies no DICOM attribute into ``Study.meta``, logs or messages except the
technical ones it interprets (sizes, transfer syntax, spacing, timing). Identifiers that
help a site correlate a job with its source (series/study UIDs) are reported only as
salted hashes, and only when the caller passes a salt (per deployment, never global).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

PATIENT_KEYWORDS: Final[tuple[str, ...]] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "PatientAge",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "OtherPatientIDs",
    "OtherPatientNames",
    "OtherPatientIDsSequence",
    "PatientMotherBirthName",
    "EthnicGroup",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "InstitutionName",
    "InstitutionAddress",
    "StudyID",
    "IssuerOfPatientID",
)
"""Keywords of the patient module and related identifying attributes (documentation and tests;
ingest reads none of them)."""


def derived_id(value: str, salt: bytes | str, kind: str = "series") -> str:
    """A stable, non-reversible identifier for ``value``: HMAC-SHA256 keyed by ``salt`` (hex, 16 chars).

    ``kind`` separates name spaces, so a study UID and a series UID never collide.
    """
    key = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)
    if not key:
        raise ValueError("derived_id needs a non-empty salt")
    digest = hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}-{digest[:16]}"
