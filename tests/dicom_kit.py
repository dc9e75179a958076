"""DICOM test kit: a US cine file to send in, an in-process C-STORE peer (pynetdicom storage SCP on
127.0.0.1), and a reader for multipart/related DICOM bodies (GET /v1/jobs/{id}/dicom, STOW-RS)."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def cardiac_masks(n_frames: int = 10, shape: tuple[int, int] = (96, 72)) -> np.ndarray:
    """(T, H, W) uint8 {0, 255}: an apex-up ellipse that contracts mid-cycle (a mask cine exported as DICOM)."""
    h, w = shape
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((n_frames, h, w), np.uint8)
    for k in range(n_frames):
        s = 1.0 - 0.22 * math.sin(math.pi * k / (n_frames - 1))
        a, b = 0.36 * h * s, 0.28 * w * math.sqrt(s)
        out[k] = (((rr - 0.1 * h - a) / a) ** 2 + ((cc - w / 2) / b) ** 2 <= 1.0) * 255
    return out


def dicom_bytes(frames: Any, *, view: str = "A4C", patient: dict[str, str] | None = None,
                frame_time_ms: float = 40.0, delta_cm: float = 0.03, **attrs: Any) -> bytes:
    """A US Multi-frame Image Storage file (explicit VR little endian) holding ``frames`` (T, H, W) uint8,
    with a Sequence of Ultrasound Regions (spacing), a frame time and ``patient`` values planted."""
    import io

    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    t, rows, cols = frames.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.SeriesDescription = view
    for k, v in (patient or {"SeriesInstanceUID": generate_uid(), "StudyInstanceUID": generate_uid()}).items():
        setattr(ds, k, v)
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, t
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.FrameTime = frame_time_ms
    region = Dataset()
    region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 1, 1, 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = cols - 1, rows - 1
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = region.PhysicalDeltaY = float(delta_cm)
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PixelData = np.ascontiguousarray(frames).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@dataclass
class StoragePeer:
    """What an in-process storage SCP received (datasets in arrival order) and its address."""

    port: int
    ae_title: str
    received: list[Any] = field(default_factory=list)
    calling_ae_titles: list[str] = field(default_factory=list)


@contextmanager
def storage_scp(ae_title: str = "TEST-PACS", status: int = 0x0000) -> Iterator[StoragePeer]:
    """A pynetdicom storage SCP on 127.0.0.1 (a free port) that accepts every storage SOP class in explicit
    and implicit VR little endian and answers each C-STORE with ``status``."""
    from pynetdicom import AE, AllStoragePresentationContexts, evt
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=ae_title)
    ae.supported_contexts = AllStoragePresentationContexts
    ae.add_supported_context(Verification)
    peer = StoragePeer(0, ae_title)

    def on_store(event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        peer.received.append(ds)
        peer.calling_ae_titles.append(str(event.assoc.requestor.ae_title))
        return status

    server = ae.start_server(("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    peer.port = int(server.server_address[1])
    try:
        yield peer
    finally:
        server.shutdown()


def multipart_parts(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """(headers, payload) of each part of a multipart body (the boundary is read from ``content_type``)."""
    params = dict(p.strip().split("=", 1) for p in content_type.split(";")[1:] if "=" in p)
    boundary = params["boundary"].strip('"').encode()
    chunks = body.split(b"--" + boundary)
    assert chunks[-1].strip() in (b"--", b""), "the body does not end with the closing boundary"
    parts = []
    for chunk in chunks[1:-1]:
        head, _, payload = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in
                   (line.split(":", 1) for line in head.decode("latin-1").split("\r\n") if ":" in line)}
        parts.append((headers, payload.removesuffix(b"\r\n")))
    return parts


def read_dicom(raw: bytes) -> Any:
    from pydicom import dcmread

    return dcmread(io.BytesIO(raw))
