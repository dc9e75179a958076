"""Where the DICOM results sit (the source study, or a new one) and what of the source they carry.

The results (SR, Encapsulated STL, Secondary Captures) go back to the PACS *in the source study*, so
they carry its Study Instance UID, and the SR lists the source instances it was measured from by
their SOP Class/Instance and Series UIDs. They carry no patient value: Echo4D never stores one
(docs/reliability.md, "PHI"), so PatientName, PatientID, PatientBirthDate, PatientSex,
AccessionNumber, StudyID, StudyDate/Time and ReferringPhysicianName are present (Type 2) but empty.
A PACS files the objects by Study Instance UID; one that also checks the Patient ID puts them in its
reconciliation queue (docs/service.md, "DICOM results").

Input that is not DICOM has no source study: a new Study Instance UID is made and
:attr:`DicomTarget.new_study` says so. Every UID the results get is derived from ``uid_seed`` (the job
id) and the kind of object, so a job that is exported again produces the same instances, which a PACS
replaces instead of duplicating.
"""

from __future__ import annotations

import io
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from models import __version__

MANUFACTURER: Final = "Echo4D"
MODEL_NAME: Final = "Echo4D 4D LV reconstruction"
SOFTWARE_VERSION: Final = __version__
_UID_RE: Final = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_SOURCE_TAGS: Final = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
_DIRECTORY_SOP_CLASS: Final = "1.2.840.10008.1.3.10"


def is_uid(value: object) -> bool:
    """A well-formed DICOM UID (digits and dots, no leading zeros, at most 64 characters)."""
    return isinstance(value, str) and 0 < len(value) <= 64 and _UID_RE.match(value) is not None


@dataclass(frozen=True)
class SourceInstance:
    """One source image the results were computed from (UIDs only)."""

    study_instance_uid: str
    series_instance_uid: str
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True)
class DicomTarget:
    """The study the results go into and the source instances they reference."""

    study_instance_uid: str
    sources: tuple[SourceInstance, ...]
    uid_seed: str

    @property
    def new_study(self) -> bool:
        """True when the input held no DICOM: the results open a study of their own."""
        return not self.sources

    def uid(self, kind: str) -> str:
        """A UID for ``kind`` (``sr``, ``sr-series``, ...), the same for the same job and study."""
        return str(generate_uid(entropy_srcs=[self.uid_seed, self.study_instance_uid, kind]))

    def evidence(self) -> list[Dataset]:
        """The source instances as datasets holding only their UIDs and empty Type 2 patient/study values
        (highdicom copies patient and study values from the first one)."""
        out = []
        for src in self.sources:
            ds = Dataset()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = src.study_instance_uid, src.series_instance_uid
            ds.SOPClassUID, ds.SOPInstanceUID = src.sop_class_uid, src.sop_instance_uid
            for keyword in ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber",
                            "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName"):
                setattr(ds, keyword, None)
            out.append(ds)
        return out


def target_from_sources(sources: list[SourceInstance], uid_seed: str | None = None) -> DicomTarget:
    """The study most source instances belong to (ties: the smallest UID), with those instances; a new
    study when there are none. ``uid_seed`` None → a random seed (the CLI; the worker passes the job id)."""
    seed = uid_seed or secrets.token_hex(16)
    unique = sorted(set(sources), key=lambda s: (s.study_instance_uid, s.series_instance_uid, s.sop_instance_uid))
    if not unique:
        return DicomTarget(str(generate_uid(entropy_srcs=[seed, "study"])), (), seed)
    counts = Counter(s.study_instance_uid for s in unique)
    study = min(counts, key=lambda uid: (-counts[uid], uid))
    return DicomTarget(study, tuple(s for s in unique if s.study_instance_uid == study), seed)


def source_instance(ds: Dataset) -> SourceInstance | None:
    """The UIDs of one DICOM header, or None when one is missing or malformed (or it is a DICOMDIR)."""
    values = [ds.get(keyword) for keyword in _SOURCE_TAGS]
    if any(v is None or not is_uid(str(v)) for v in values):
        return None
    study, series, instance, sop_class = (str(v) for v in values)
    if sop_class == _DIRECTORY_SOP_CLASS:
        return None
    return SourceInstance(study, series, sop_class, instance)


def read_sources(paths: list[Path]) -> list[SourceInstance]:
    """The source instances among the input files (plain files, folders or zips, as ingest expands
    them): only the four UIDs are read from each DICOM header; anything else is skipped."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    from models.ingest.expand import expand_paths
    from models.ingest.sniff import Format
    from models.study import StudyLimits

    found: list[SourceInstance] = []
    for item in expand_paths(list(paths), StudyLimits()).items:
        if item.fmt is not Format.DICOM:
            continue
        try:
            ds = dcmread(io.BytesIO(item.data), stop_before_pixels=True, specific_tags=list(_SOURCE_TAGS))
        except (InvalidDicomError, ValueError, TypeError, KeyError, EOFError, OSError):
            continue
        src = source_instance(ds)
        if src is not None:
            found.append(src)
    return found


def common_kwargs(target: DicomTarget, kind: str, series_number: int, series_description: str,
                  now: datetime) -> dict[str, Any]:
    """Constructor arguments shared by the highdicom SOP classes of every result object: series and
    instance UIDs, equipment, content date/time (the study UID is passed apart: the SR takes it from its
    evidence). highdicom leaves every patient value empty when none is given."""
    return {
        "series_instance_uid": target.uid(f"{kind}-series"),
        "series_number": series_number,
        "sop_instance_uid": target.uid(kind),
        "instance_number": 1,
        "manufacturer": MANUFACTURER,
        "manufacturer_model_name": MODEL_NAME,
        "software_versions": SOFTWARE_VERSION,
        "device_serial_number": "0",
        "series_description": series_description,
        "content_date": now.date(),
        "content_time": now.time().replace(microsecond=0),
        "transfer_syntax_uid": ExplicitVRLittleEndian,
    }


def dataset_bytes(ds: Dataset) -> bytes:
    """A dataset as a DICOM Part 10 file (preamble, file meta, explicit VR little endian)."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
