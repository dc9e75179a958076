"""Builders shared by the ingest tests: one synthetic cine written in every input format."""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

FAKE_PHI = {
    "PatientName": "Doe^Janet^PHI7731",
    "PatientID": "PID-99887766",
    "PatientBirthDate": "19450317",
    "AccessionNumber": "ACC5551234",
    "OtherPatientIDs": "OPID-424242",
    "ReferringPhysicianName": "Houseman^Greg^PHI",
    "InstitutionName": "St Elsewhere PHI Hospital",
}
FAKE_UIDS = {
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.77123456789012345",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.77123456789098765",
}


def warp_phase(tau: NDArray[np.float64], alpha: float) -> NDArray[np.float64]:
    """EchoVDiff's W(τ, α): normalised time in [0, 1) → phase with ED = 0, ES = π at τ = α."""
    return np.where(tau <= alpha, math.pi * tau / alpha, math.pi * ((tau - alpha) / (1 - alpha) + 1))


def cardiac_cine(n_frames: int, fps: float, *, cycle_s: float = 0.9, alpha: float = 0.35, ed_time_s: float = 0.0,
                 shape: tuple[int, int] = (64, 48), swing: float = 0.25) -> NDArray[np.uint8]:
    """Elliptic LV masks (T, H, W) whose area peaks at ED (t = ed_time_s + k·cycle) and dips at ES (+α·cycle)."""
    h, w = shape
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    t = np.arange(n_frames) / fps
    tau = np.mod(t - ed_time_s, cycle_s) / cycle_s
    contraction = (1 - np.cos(warp_phase(tau, alpha))) / 2  # 0 at ED, 1 at ES
    out = np.zeros((n_frames, h, w), np.uint8)
    for k in range(n_frames):
        scale = 1.0 - swing * contraction[k]
        a, b = 0.36 * h * scale, 0.3 * w * math.sqrt(scale)
        out[k] = ((rr - 0.1 * h - a) / a) ** 2 + ((cc - w / 2) / b) ** 2 <= 1.0
    return out


def base_masks() -> NDArray[np.uint8]:
    """The one synthetic cine every format round trip starts from: 8 frames of 64×48."""
    return cardiac_cine(8, 10.0, cycle_s=0.8)


def write_npy(path: Path, arr: NDArray[Any]) -> Path:
    np.save(path, arr)
    return path


def write_nifti(path: Path, masks: NDArray[np.uint8], spacing: tuple[float, float], *, flip_x: bool = False,
                flip_y: bool = False, swap: bool = False, dt_s: float | None = None) -> Path:
    """Write (T, H, W) masks as NIfTI (x, y, t) with an ITK-style LPS affine, optionally flipped/swapped."""
    import nibabel as nib

    sr, sc = spacing
    data = masks.transpose(2, 1, 0).copy()  # (x = cols, y = rows, t)
    aff = np.diag([-sc, -sr, 1.0, 1.0])
    if flip_x:
        data = data[::-1]
        aff[0, 0], aff[0, 3] = sc, -sc * (data.shape[0] - 1)
    if flip_y:
        data = data[:, ::-1]
        aff[1, 1], aff[1, 3] = sr, -sr * (data.shape[1] - 1)
    if swap:
        data = data.transpose(1, 0, 2)
        aff[:, [0, 1]] = aff[:, [1, 0]]
    if dt_s is not None:
        data = data[:, :, None, :]
    img = nib.Nifti1Image(np.ascontiguousarray(data), aff)
    img.header.set_xyzt_units("mm", "sec")
    if dt_s is not None:
        zooms = list(img.header.get_zooms())
        zooms[3] = dt_s
        img.header.set_zooms(zooms)
    nib.save(img, str(path))
    return path


def png_bytes(frame: NDArray[Any]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def write_png_folder(folder: Path, masks: NDArray[np.uint8], scale: int = 255) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(masks):  # frame2 < frame10 needs natural order
        (folder / f"frame{k}.png").write_bytes(png_bytes((frame * scale).astype(np.uint8)))
    return folder


def write_png_zip(path: Path, masks: NDArray[np.uint8]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for k, frame in enumerate(masks):
            zf.writestr(f"a4c/f_{k:03d}.png", png_bytes(frame))
    return path


def write_video(path: Path, frames: NDArray[np.uint8], fps: int, codec: str = "libx264") -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"qp": "0", "preset": "ultrafast"}
        for f in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="gray")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def us_region(rows: int, cols: int, delta_cm: float, *, scale: int = 1) -> Any:
    """A Sequence of Ultrasound Regions item covering the image (bounds multiplied by ``scale``)."""
    from pydicom.dataset import Dataset

    r = Dataset()
    r.RegionSpatialFormat = 1
    r.RegionDataType = 1
    r.RegionFlags = 0
    r.RegionLocationMinX0 = 2 * scale
    r.RegionLocationMinY0 = 1 * scale
    r.RegionLocationMaxX1 = (cols - 3) * scale
    r.RegionLocationMaxY1 = (rows - 2) * scale
    r.PhysicalUnitsXDirection = 3
    r.PhysicalUnitsYDirection = 3
    r.PhysicalDeltaX = float(delta_cm)
    r.PhysicalDeltaY = float(delta_cm)
    return r


def dicom_dataset(frames: NDArray[np.uint8], *, syntax: str = "native", frame_time_ms: float | None = 40.0,
                  delta_cm: float | None = 0.03, region_scale: int = 1, series_description: str | None = None,
                  phi: bool = True, **attrs: Any) -> Any:
    """A US Multi-frame Image Storage data set holding ``frames`` (T, H, W) uint8 (MONOCHROME2)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.sequence import Sequence
    from pydicom.uid import JPEGBaseline8Bit, RLELossless, generate_uid

    t, rows, cols = frames.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    if phi:
        for k, v in {**FAKE_PHI, **FAKE_UIDS}.items():
            setattr(ds, k, v)
    else:
        ds.SeriesInstanceUID = generate_uid()
    if series_description:
        ds.SeriesDescription = series_description
    ds.Rows, ds.Columns = rows, cols
    ds.NumberOfFrames = t
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if frame_time_ms is not None:
        ds.FrameTime = frame_time_ms
    if delta_cm is not None:
        ds.SequenceOfUltrasoundRegions = Sequence([us_region(rows, cols, delta_cm, scale=region_scale)])
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    if syntax == "rle":
        ds.compress(RLELossless)
    elif syntax == "jpeg":
        from PIL import Image

        encoded = []
        for f in frames:
            buf = io.BytesIO()
            Image.fromarray(f).save(buf, format="JPEG", quality=95)
            encoded.append(buf.getvalue())
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.LossyImageCompression = "01"
    return ds


def write_dicom(path: Path, ds: Any) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path
