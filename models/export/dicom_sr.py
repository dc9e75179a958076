"""The LV volumes as a DICOM Structured Report: a Comprehensive 3D SR holding a TID 1500 Measurement Report.

One measurement group (tracking identifier "Echo4D LV volumes", finding site: left ventricle) with
four TID 300 measurements, named with the codes of the echo measurement mapping (PS3.17 Annex N):

====================  ==================  ======  ==========================================
measurement           code                unit    value
====================  ==================  ======  ==========================================
LV EDV                (18026-5, LN)       ml      mesh volume at the ED frame
LV ESV                (18148-7, LN)       ml      mesh volume at the ES frame
stroke volume         (90096001, SCT)     ml      EDV − ESV
LV EF                 (18043-0, LN)       %       100 · SV / EDV
====================  ==================  ======  ==========================================

Each measurement carries the measurement-method modifier (370129005, SCT) = :data:`METHOD_3D`, a code
of Echo4D's private scheme ``99ECHO4D`` (declared in the Coding Scheme Identification Sequence): no
standard code names a 3D surface reconstructed from 2D apical views (CID 12228 lists only 2D
methods), and the LOINC "(3D)" volume codes (79995-7, 80000-3) mean a 3D echo acquisition, which
this is not. The algorithm (TID 4019) names Echo4D, its version and profile.

When the report has Simpson's biplane values (``report.json`` ``simpson_biplane``: the method of disks on
the A4C + A2C masks at ED and ES), a second group (tracking identifier "Simpson biplane (method of
disks)") holds LV EDV, LV ESV and LV EF with the measurement method (125207, DCM) "Method of Disks,
Biplane", beside ours, so a reader sees the clinical comparison in the PACS.

The SR's evidence (Current Requested Procedure Evidence Sequence) is the source echo instances and
the Encapsulated STL of the ED mesh, all in the same study.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    FindingSite,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from models.export.dicom_common import MANUFACTURER, MODEL_NAME, SOFTWARE_VERSION, DicomTarget, common_kwargs
from models.recon.result import ReconResult

SR_SERIES_NUMBER: Final = 9401
PRIVATE_SCHEME: Final = "99ECHO4D"
LV_EDV: Final = CodedConcept("18026-5", "LN", "Left Ventricular End Diastolic Volume")
LV_ESV: Final = CodedConcept("18148-7", "LN", "Left Ventricular End Systolic Volume")
LV_EF: Final = CodedConcept("18043-0", "LN", "Left Ventricular Ejection Fraction")
STROKE_VOLUME: Final = CodedConcept("90096001", "SCT", "Stroke Volume")
METHOD_3D: Final = CodedConcept("E4D-3DREC", PRIVATE_SCHEME, "3D surface reconstruction from 2D apical views")
BIPLANE_DISKS: Final = CodedConcept("125207", "DCM", "Method of Disks, Biplane")
MILLILITER: Final = CodedConcept("ml", "UCUM", "milliliter")
PERCENT: Final = CodedConcept("%", "UCUM", "percent")
DEVICE_UID: Final = str(generate_uid(entropy_srcs=["echo4d", "observer-device"]))


def volume_measurements(result: ReconResult) -> list[tuple[CodedConcept, float, CodedConcept]]:
    """(name, value, unit) of EDV, ESV, SV (ml) and EF (%), in that order; refuses non-finite values."""
    values = [(LV_EDV, result.edv_ml, MILLILITER), (LV_ESV, result.esv_ml, MILLILITER),
              (STROKE_VOLUME, result.sv_ml, MILLILITER), (LV_EF, result.ef_percent, PERCENT)]
    bad = [name.meaning for name, value, _ in values if not np.isfinite(value)]
    if bad:
        raise ValueError(f"cannot report non-finite {', '.join(bad)} in a DICOM SR")
    return [(name, round(float(value), 2), unit) for name, value, unit in values]


def simpson_measurements(simpson: Mapping[str, Any]) -> list[tuple[CodedConcept, float, CodedConcept]]:
    """(name, value, unit) of the biplane method-of-disks EDV, ESV (ml) and EF (%) of the report's
    ``simpson_biplane``; refuses non-finite values."""
    values = [(LV_EDV, simpson["edv_ml"], MILLILITER), (LV_ESV, simpson["esv_ml"], MILLILITER),
              (LV_EF, simpson["ef_percent"], PERCENT)]
    bad = [name.meaning for name, value, _ in values if value is None or not np.isfinite(float(value))]
    if bad:
        raise ValueError(f"cannot report non-finite Simpson {', '.join(bad)} in a DICOM SR")
    return [(name, round(float(value), 2), unit) for name, value, unit in values]


def build_volume_sr(result: ReconResult, target: DicomTarget, now: datetime,
                    extra_evidence: list[Dataset] | None = None,
                    simpson: Mapping[str, Any] | None = None) -> Comprehensive3DSR:
    """The Comprehensive 3D SR of ``result``'s EDV/ESV/SV/EF in ``target``'s study. ``extra_evidence``:
    results of the same job that the SR cites (the Encapsulated STL); needed when there is no source
    instance (non-DICOM input), since an SR must have evidence. ``simpson``: the report's
    ``simpson_biplane`` (a second group, method of disks biplane), or None."""
    evidence = target.evidence() + list(extra_evidence or [])
    if not evidence:
        raise ValueError("an SR needs evidence: a source instance or another result object of the study")
    profile = str(result.model_info.get("profile", "default"))
    algorithm = AlgorithmIdentification(name="Echo4D", version=SOFTWARE_VERSION,
                                        parameters=[f"profile={profile}"])
    measurements = [Measurement(name=name, value=value, unit=unit, method=METHOD_3D, algorithm_id=algorithm)
                    for name, value, unit in volume_measurements(result)]
    group = MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=target.uid("sr-tracking"), identifier="Echo4D LV volumes"),
        finding_sites=[FindingSite(anatomic_location=codes.SCT.LeftVentricle)],
        method=METHOD_3D, algorithm_id=algorithm, measurements=measurements,
    )
    groups = [group]
    if simpson is not None:
        disks = [Measurement(name=name, value=value, unit=unit, method=BIPLANE_DISKS, algorithm_id=algorithm)
                 for name, value, unit in simpson_measurements(simpson)]
        groups.append(MeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(uid=target.uid("sr-tracking-simpson"),
                                                   identifier="Simpson biplane (method of disks)"),
            finding_sites=[FindingSite(anatomic_location=codes.SCT.LeftVentricle)],
            method=BIPLANE_DISKS, algorithm_id=algorithm, measurements=disks,
        ))
    device = ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=DEVICE_UID, name=MANUFACTURER, manufacturer_name=MANUFACTURER, model_name=MODEL_NAME),
    )
    report = MeasurementReport(
        observation_context=ObservationContext(observer_device_context=device),
        procedure_reported=codes.SCT.Echocardiography,
        imaging_measurements=groups,
    )
    scheme = CodingSchemeIdentificationItem(designator=PRIVATE_SCHEME, name="Echo4D private codes",
                                            responsible_organization="Echo4D")
    return Comprehensive3DSR(
        evidence=evidence, content=report[0],
        **common_kwargs(target, "sr", SR_SERIES_NUMBER, "Echo4D LV volumes (SR)", now),
        is_complete=True, is_final=False, is_verified=False, coding_schemes=[scheme],
    )
