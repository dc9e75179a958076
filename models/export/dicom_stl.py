"""The ED mesh as a DICOM Encapsulated STL object (SOP class 1.2.840.10008.5.1.4.1.1.104.3, modality M3D).

The STL is binary (80-byte header, triangle count, 50 bytes a triangle: unit normal, three corners,
a zero attribute), in mm (the Manufacturing 3D Model module's Measurement Units Code Sequence says
so), in Echo4D's canonical LV frame: apex at the origin, long axis +z. That frame is not the
patient's, so the object gets a Frame of Reference of its own; the Source Instance Sequence names
the echo instances it was reconstructed from.
"""

from __future__ import annotations

import struct
from datetime import datetime
from typing import Final

import numpy as np
from highdicom import SOPClass
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from models.export.dicom_common import DicomTarget, common_kwargs

ENCAPSULATED_STL_SOP_CLASS: Final = "1.2.840.10008.5.1.4.1.1.104.3"
STL_SERIES_NUMBER: Final = 9402
STL_HEADER: Final = b"Echo4D LV endocardium, ED frame, mm, canonical LV frame (apex at origin, +z to base)"


def stl_bytes(vertices: NDArray[np.float64], faces: NDArray[np.int64]) -> bytes:
    """Binary STL of one mesh: vertices (N, 3) mm, faces (F, 3) indices, outward winding."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"need vertices (N, 3) and faces (F, 3), got {v.shape} and {f.shape}")
    if f.min() < 0 or f.max() >= len(v) or not np.isfinite(v).all():
        raise ValueError("faces index vertices out of range, or vertices are not finite")
    tri = v[f]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    normal = np.divide(normal, length, out=np.zeros_like(normal), where=length > 0)
    record = np.zeros(len(f), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    record["n"], record["v"] = normal, tri
    return STL_HEADER.ljust(80, b" ")[:80] + struct.pack("<I", len(f)) + record.tobytes()


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _ref(sop_class_uid: str, sop_instance_uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID, item.ReferencedSOPInstanceUID = sop_class_uid, sop_instance_uid
    return item


def build_encapsulated_stl(vertices: NDArray[np.float64], faces: NDArray[np.int64], target: DicomTarget,
                           now: datetime) -> SOPClass:
    """The Encapsulated STL instance of one mesh (vertices (N, 3) mm, faces (F, 3)) in ``target``'s study."""
    document = stl_bytes(vertices, faces)
    ds = SOPClass(study_instance_uid=target.study_instance_uid, sop_class_uid=ENCAPSULATED_STL_SOP_CLASS,
                  modality="M3D", **common_kwargs(target, "stl", STL_SERIES_NUMBER, "Echo4D LV mesh (ED, STL)", now))
    ds.FrameOfReferenceUID = target.uid("stl-frame-of-reference")
    ds.PositionReferenceIndicator = None
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "NO"
    ds.DocumentTitle = "LV endocardial surface at end-diastole"
    ds.ConceptNameCodeSequence = []
    ds.MeasurementUnitsCodeSequence = [_code("mm", "UCUM", "millimeter")]
    if target.sources:  # Source Instance Sequence and, for the references, the Common Instance Reference module
        ds.SourceInstanceSequence = [_ref(src.sop_class_uid, src.sop_instance_uid) for src in target.sources]
        series: dict[str, list[Dataset]] = {}
        for src in target.sources:
            series.setdefault(src.series_instance_uid, []).append(_ref(src.sop_class_uid, src.sop_instance_uid))
        items = []
        for uid, refs in series.items():
            item = Dataset()
            item.SeriesInstanceUID, item.ReferencedInstanceSequence = uid, refs
            items.append(item)
        ds.ReferencedSeriesSequence = items
    ds.MIMETypeOfEncapsulatedDocument = "model/stl"
    ds.EncapsulatedDocument = document + b"\0" * (len(document) % 2)
    ds.EncapsulatedDocumentLength = len(document)
    return ds
