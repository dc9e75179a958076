"""Pictures for any PACS viewer: Multi-frame True Color Secondary Capture objects (SOP class
1.2.840.10008.5.1.4.1.1.7.4), uncompressed RGB, explicit VR little endian.

Two instances in one series ("Echo4D images"): instance 1 is the rendered beating mesh, one frame
per reconstructed frame, played at the reconstruction's frame rate (Cine module: Frame Time);
instance 2 is preview.png (ED/ES meshes and the volume curve) as one frame. Captions are burned in,
and they hold no patient value (Burned In Annotation NO).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import numpy as np
from highdicom import SOPClass
from numpy.typing import NDArray
from pydicom.tag import Tag

from models.export.dicom_common import DicomTarget, common_kwargs
from models.export.mesh_render import render_frames
from models.recon.result import ReconResult

MF_TRUE_COLOR_SC_SOP_CLASS: Final = "1.2.840.10008.5.1.4.1.1.7.4"
SC_SERIES_NUMBER: Final = 9403
SC_SERIES_DESCRIPTION: Final = "Echo4D images"


def build_true_color_sc(frames: NDArray[np.uint8], target: DicomTarget, now: datetime, kind: str,
                        instance_number: int, frame_time_ms: float | None, title: str) -> SOPClass:
    """A Multi-frame True Color SC instance of frames (T, H, W, 3) uint8 in ``target``'s study;
    ``frame_time_ms`` sets the cine rate (needed when T > 1)."""
    px = np.ascontiguousarray(frames, dtype=np.uint8)
    if px.ndim != 4 or px.shape[3] != 3 or min(px.shape[:3]) < 1:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {px.shape}")
    n_frames = px.shape[0]
    kwargs = common_kwargs(target, kind, SC_SERIES_NUMBER, SC_SERIES_DESCRIPTION, now)
    kwargs["series_instance_uid"] = target.uid("sc-series")  # both pictures in one series
    kwargs["instance_number"] = instance_number
    ds = SOPClass(study_instance_uid=target.study_instance_uid, sop_class_uid=MF_TRUE_COLOR_SC_SOP_CLASS,
                  modality="OT", **kwargs)
    ds.ConversionType = "WSD"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.PatientOrientation, ds.BodyPartExamined = None, "HEART"  # unpaired: no Laterality
    ds.BurnedInAnnotation = "NO"
    ds.DerivationDescription = title
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.Rows, ds.Columns = px.shape[1], px.shape[2]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.NumberOfFrames = n_frames
    if n_frames > 1:
        if frame_time_ms is None or not np.isfinite(frame_time_ms) or frame_time_ms <= 0:
            raise ValueError("a cine needs a positive frame time")
        ds.FrameIncrementPointer = Tag("FrameTime")
        ds.FrameTime = round(float(frame_time_ms), 3)
        ds.RecommendedDisplayFrameRate = max(1, round(1000.0 / float(frame_time_ms)))
    ds.PixelData = px.tobytes()
    return ds


def mesh_cine_frames(result: ReconResult) -> tuple[NDArray[np.uint8], float]:
    """The beating mesh rendered per frame (T, H, W, 3) and the mean frame interval (ms)."""
    ed, es = int(result.ed_frame), int(result.es_frame)
    captions = []
    for k, (t, vol) in enumerate(zip(result.frame_times_s, result.volumes_ml, strict=True)):
        phase = " ED" if k == ed else (" ES" if k == es else "")
        captions.append(f"Echo4D LV  t={float(t):.2f} s  V={float(vol):.0f} ml{phase}")
    frames = render_frames(result.vertices, result.faces, captions)
    times = np.asarray(result.frame_times_s, dtype=np.float64)
    frame_time_ms = 1000.0 * float(np.diff(times).mean()) if len(times) > 1 else 40.0
    return frames, frame_time_ms
