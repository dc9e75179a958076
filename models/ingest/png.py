"""PNG sequences (a folder, or a folder inside a zip): one frame per file, in natural name order.

Sizes are read from every file's IHDR chunk and checked against the limits before any
frame is decoded. Palette PNGs keep their indices (label maps); colour is turned to grey.
"""

from __future__ import annotations

import io
import re
import struct
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.errors import ErrorCode, InputError
from models.ingest.decoded import Decoded, InputItem, check_cine_size, decide_kind, to_grey_uint8
from models.ingest.options import FileOptions
from models.ingest.report import SourceReport
from models.study import StudyLimits


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def png_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from the IHDR chunk, or None when the header is damaged."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(height), int(width)


def _decode_png(data: bytes, where: str) -> NDArray[Any]:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr"):
                rgb: NDArray[np.uint8] = np.asarray(im.convert("RGB"), dtype=np.uint8)
                if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
                    channel: NDArray[np.uint8] = rgb[..., 0]
                    return channel
                grey: NDArray[np.uint8] = to_grey_uint8(rgb[None])[0]
                return grey
            arr: NDArray[Any] = np.asarray(im)
            return arr
    except Exception:
        raise InputError(f"{where} is a truncated or corrupt PNG", code=ErrorCode.CORRUPT_FILE, field=where) from None


def read_png_sequence(items: list[InputItem], options: FileOptions, source: SourceReport,
                      limits: StudyLimits) -> Decoded:
    """Stack the PNG frames of one folder into (T, H, W)."""
    where = source.label
    ordered = sorted(items, key=lambda i: natural_key(i.relpath))
    sizes = []
    for it in ordered:
        size = png_size(it.data)
        if size is None:
            raise InputError(f"{where}: a frame has a damaged PNG header", code=ErrorCode.CORRUPT_FILE, field=it.name)
        sizes.append(size)
    if len(set(sizes)) > 1:
        shown = ", ".join(sorted({f"{w}×{h}" for h, w in sizes}))
        raise InputError(f"{where}: the PNG frames differ in size ({shown})", code=ErrorCode.BAD_DIMENSIONS,
                         field=ordered[0].folder or ordered[0].name)
    h, w = sizes[0]
    check_cine_size(len(ordered), h, w, where, limits, field=ordered[0].folder or ordered[0].name)
    frames = [_decode_png(it.data, it.name) for it in ordered]
    if any(f.shape != (h, w) for f in frames):
        raise InputError(f"{where}: a PNG frame's pixels do not match its header", code=ErrorCode.CORRUPT_FILE,
                         field=ordered[0].name)
    dtypes = {f.dtype for f in frames}
    arr = np.stack(frames).astype(np.uint16 if np.dtype(np.uint16) in dtypes else frames[0].dtype, copy=False)
    kind, lossy = decide_kind(arr, options)
    return Decoded(frames=arr if kind == "masks" else to_grey_uint8(arr), kind=kind, options=options,
                   source=source, lossy_masks=lossy)
