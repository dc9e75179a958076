"""DICOM ultrasound cines: multi-frame US, single-frame series, native and compressed syntaxes.

Order of work (so hostile files cannot hang or exhaust memory): refuse the deflated syntax
(pydicom inflates it without a bound), parse the header, check
rows × columns × frames × samples against the limits, check the transfer syntax has a
decoder, check the pixel data length (native) or the frame fragments and each JPEG /
JPEG 2000 frame header's own size (compressed), and only then decode, one frame at a time,
straight to uint8 grey (YBR and RGB → luminance; MONOCHROME1 inverted).
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from models.errors import ErrorCode, InputError
from models.ingest.decoded import Decoded, InputItem, check_cine_size, decide_kind, to_grey_uint8
from models.ingest.dicom_meta import SpacingResult, cine_timing, dicom_view, ultrasound_spacing
from models.ingest.frame_headers import encoded_frame_size
from models.ingest.options import FileOptions
from models.ingest.privacy import derived_id
from models.ingest.report import IngestReport, SourceReport
from models.study import StudyLimits

logger = logging.getLogger(__name__)

_DEFLATED_TS = b"1.2.840.10008.1.2.1.99"


@dataclass
class DicomHeader:
    """A parsed DICOM file with the image attributes ingest needs (pixel data not yet decoded)."""

    item: InputItem
    ds: Any  # pydicom Dataset
    rows: int
    cols: int
    n_frames: int
    samples: int
    bits: int
    transfer_syntax: str
    series_key: str
    instance: int


def _int(ds: Any, keyword: str, default: int | None = None) -> int | None:
    value = ds.get(keyword, default)
    try:
        return int(value) if value is not None and value != "" else default
    except (TypeError, ValueError, OverflowError):
        return default


_READ_KEYWORDS: Final = ("PixelData", "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "BitsAllocated",
                         "SeriesInstanceUID", "InstanceNumber", "PhotometricInterpretation", "LossyImageCompression",
                         "PixelSpacing", "SequenceOfUltrasoundRegions", "FrameTime", "FrameTimeVector", "CineRate",
                         "RecommendedDisplayFrameRate", "ViewCodeSequence", "SeriesDescription")


def _parse_read_attributes(ds: Any) -> None:
    """Convert now every attribute ingest reads (and the items of the sequences it reads) from raw bytes."""
    from pydicom.sequence import Sequence

    for keyword in _READ_KEYWORDS:
        value = ds.get(keyword)
        if isinstance(value, Sequence):
            for sequence_item in value:
                for _ in sequence_item:  # iterating a data set converts each element
                    pass


def read_dicom_header(item: InputItem, limits: StudyLimits) -> DicomHeader | None:
    """Parse ``item``; ``None`` when it is DICOM without pixel data (DICOMDIR, reports)."""
    import pydicom
    from pydicom.uid import ImplicitVRLittleEndian

    if _DEFLATED_TS in item.data:  # pydicom would zlib-inflate the whole body, unbounded, while parsing
        raise InputError(f"{item.name} uses the Deflated Explicit VR Little Endian transfer syntax, which Echo4D "
                         "does not read; re-export the cine uncompressed (Explicit VR Little Endian) or with an "
                         "image codec (JPEG, RLE)", code=ErrorCode.UNSUPPORTED_TRANSFER_SYNTAX,
                         field="TransferSyntaxUID")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(item.data), force=True)
            _parse_read_attributes(ds)  # pydicom parses lazily: a malformed value would raise later, anywhere
    except Exception:
        raise InputError(f"{item.name} is not a readable DICOM file (truncated or not DICOM)",
                         code=ErrorCode.CORRUPT_FILE, field=item.name) from None
    if "PixelData" not in ds:
        if len(ds) == 0:
            raise InputError(f"{item.name} is not a DICOM file", code=ErrorCode.CORRUPT_FILE, field=item.name)
        return None
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", ImplicitVRLittleEndian)) if meta is not None else str(ImplicitVRLittleEndian)
    rows, cols = _int(ds, "Rows"), _int(ds, "Columns")
    if rows is None or cols is None:
        raise InputError(f"{item.name} has pixel data but no Rows/Columns", code=ErrorCode.CORRUPT_FILE,
                         field="Rows")
    n_frames = _int(ds, "NumberOfFrames", 1) or 1
    samples = _int(ds, "SamplesPerPixel", 1) or 1
    bits = _int(ds, "BitsAllocated", 8) or 8
    if samples not in (1, 3) or bits not in (1, 8, 16, 32):
        raise InputError(f"{item.name}: {samples} samples of {bits} bits per pixel is not an image Echo4D reads",
                         code=ErrorCode.UNSUPPORTED_FORMAT, field="SamplesPerPixel")
    # Frames of a single-frame series are checked together later; one file's own size is checked now.
    if max(rows, cols) > limits.max_side or n_frames > limits.max_frames or \
            rows * cols * n_frames > limits.max_voxels_per_view:
        check_cine_size(n_frames, rows, cols, item.name, limits, field="NumberOfFrames")
    series = str(ds.get("SeriesInstanceUID", "") or item.relpath)
    return DicomHeader(item, ds, rows, cols, n_frames, samples, bits, ts, series, _int(ds, "InstanceNumber", 0) or 0)


def _check_transfer_syntax(h: DicomHeader, where: str) -> None:
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import UID

    uid = UID(h.transfer_syntax)
    name = uid.name if uid.is_valid else repr(h.transfer_syntax[:64])  # never echo kilobytes of file text
    try:
        available = get_decoder(uid).is_available
    except NotImplementedError:
        available = False
    if not available:
        raise InputError(f"{where}: transfer syntax {name} cannot be decoded here; re-export the cine as uncompressed "
                         "(Explicit VR Little Endian), RLE, JPEG baseline/lossless, JPEG-LS or JPEG 2000",
                         code=ErrorCode.UNSUPPORTED_TRANSFER_SYNTAX, field="TransferSyntaxUID")


def _check_pixel_data(h: DicomHeader, where: str) -> None:
    """Native: the byte count matches the frames. Encapsulated: fragments form the frames, sizes agree."""
    from pydicom.encaps import generate_frames
    from pydicom.uid import UID

    data = h.ds.PixelData
    if not UID(h.transfer_syntax).is_compressed:
        per_frame = (h.rows * h.cols * h.samples * h.bits + 7) // 8
        have = len(data)
        if have < per_frame * h.n_frames:
            if have and have % per_frame == 0:
                raise InputError(f"{where}: NumberOfFrames says {h.n_frames} but the pixel data holds "
                                 f"{have // per_frame} frames", code=ErrorCode.FRAME_COUNT_MISMATCH,
                                 field="NumberOfFrames")
            raise InputError(f"{where}: the pixel data is truncated ({have} of {per_frame * h.n_frames} bytes)",
                             code=ErrorCode.CORRUPT_FILE, field="PixelData")
        return
    try:
        frames = list(generate_frames(data, number_of_frames=h.n_frames))
    except Exception:
        raise InputError(f"{where}: the compressed pixel data is damaged (fragments do not form "
                         f"{h.n_frames} frames)", code=ErrorCode.CORRUPT_FILE, field="PixelData") from None
    if len(frames) != h.n_frames:
        raise InputError(f"{where}: NumberOfFrames says {h.n_frames} but the pixel data holds {len(frames)} frames",
                         code=ErrorCode.FRAME_COUNT_MISMATCH, field="NumberOfFrames")
    for k, frame in enumerate(frames):
        size = encoded_frame_size(frame, h.transfer_syntax)
        if size is not None and size != (h.rows, h.cols):
            raise InputError(f"{where}: compressed frame {k} is {size[1]}×{size[0]} px but the header says "
                             f"{h.cols}×{h.rows}", code=ErrorCode.CORRUPT_FILE, field="PixelData")


def _decode_frames(h: DicomHeader, where: str) -> list[NDArray[Any]]:
    from pydicom.pixels.utils import iter_pixels

    out: list[NDArray[Any]] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for frame in iter_pixels(h.ds, as_rgb=True):
                arr = np.asarray(frame)
                if arr.shape[:2] != (h.rows, h.cols):
                    raise InputError(f"{where}: a decoded frame is {arr.shape[:2]}, not {(h.rows, h.cols)}",
                                     code=ErrorCode.CORRUPT_FILE, field="PixelData")
                out.append(arr)
                if len(out) > h.n_frames:
                    break
    except InputError:
        raise
    except Exception as exc:
        logger.info("DICOM decode failed: %s", type(exc).__name__)
        raise InputError(f"{where}: the pixel data cannot be decoded ({type(exc).__name__}); the file is damaged "
                         "or uses an unusual encoding", code=ErrorCode.CORRUPT_FILE, field="PixelData") from None
    if len(out) != h.n_frames:
        raise InputError(f"{where}: NumberOfFrames says {h.n_frames} but {len(out)} frames decoded",
                         code=ErrorCode.FRAME_COUNT_MISMATCH, field="NumberOfFrames")
    return out


_LOSSY_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
                             "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.4.100",
                             "1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103"})


def _lossy(h: DicomHeader) -> bool:
    return h.transfer_syntax in _LOSSY_SYNTAXES or str(h.ds.get("LossyImageCompression", "")) == "01"


def decode_dicom(headers: list[DicomHeader], options: FileOptions, source: SourceReport, limits: StudyLimits,
                 report: IngestReport, salt: bytes | str | None = None) -> Decoded:
    """Decode one multi-frame file, or a single-frame series (ordered by InstanceNumber), to a cine."""
    where = source.label
    hs = sorted(headers, key=lambda h: (h.instance, h.item.relpath))
    first = hs[0]
    if len(hs) > 1:
        if any(h.n_frames != 1 for h in hs):
            raise InputError(f"{where}: a series mixes multi-frame and single-frame files; send one cine per file "
                             "or one frame per file", code=ErrorCode.FRAME_COUNT_MISMATCH, field="NumberOfFrames")
        if len({(h.rows, h.cols, h.samples) for h in hs}) > 1:
            raise InputError(f"{where}: the frames of the series differ in size", code=ErrorCode.BAD_DIMENSIONS,
                             field="Rows")
    n_frames = sum(h.n_frames for h in hs)
    check_cine_size(n_frames, first.rows, first.cols, where, limits, field="NumberOfFrames")
    for h in hs:
        _check_transfer_syntax(h, where)
        _check_pixel_data(h, where)
    arr = np.stack([f for h in hs for f in _decode_frames(h, where)])
    if arr.ndim == 4:  # colour: only ever images (or lossy masks)
        arr = to_grey_uint8(arr)
    kind, lossy = decide_kind(arr, options, lossy_codec=_lossy(first))
    if kind == "images" or lossy:
        if str(first.ds.get("PhotometricInterpretation", "")) == "MONOCHROME1" and np.issubdtype(arr.dtype, np.integer):
            arr = np.iinfo(arr.dtype).max - arr
        arr = to_grey_uint8(arr)
    frames = arr
    out = Decoded(frames=frames, kind=kind, options=options, source=source, lossy_masks=lossy)
    from pydicom.uid import UID

    source.extra["transfer_syntax"] = UID(first.transfer_syntax).name
    source.extra["photometric"] = str(first.ds.get("PhotometricInterpretation", ""))
    source.extra["dicom_files"] = len(hs)

    try:
        sp = ultrasound_spacing(first.ds, first.rows, first.cols, where)
    except InputError as exc:
        if options.pixel_spacing_mm is None:
            raise
        sp = SpacingResult(None, "none", warnings=[f"{where}: the file's ultrasound-region spacing is unusable "
                                                   f"({exc.code.value}); using the caller's spacing"])
    for w in sp.warnings:
        report.warn(w)
    out.spacing_mm, out.spacing_source, out.region = sp.spacing_mm, sp.source, sp.region
    timing = cine_timing(first.ds, n_frames, where)
    for w in timing.warnings:
        report.warn(w)
    out.fps, out.fps_source = timing.fps, timing.source
    out.view, out.view_source = dicom_view(first.ds)
    if salt:
        source.series_id = derived_id(first.series_key, salt, "series")
    return out
