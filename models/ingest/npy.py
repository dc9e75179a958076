"""``.npy`` cines: (T, H, W) label maps or grey images (spacing and timing from the manifest)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.errors import ErrorCode, InputError
from models.ingest.decoded import Decoded, InputItem, check_cine_size, decide_kind, to_grey_uint8
from models.ingest.options import FileOptions
from models.ingest.report import SourceReport
from models.study import StudyLimits


def squeeze_cine(shape: tuple[int, ...], where: str, field: str) -> tuple[int, int, int]:
    """Interpret an array shape as (T, H, W) (a trailing channel axis of 1 is dropped)."""
    dims = list(shape)
    if len(dims) == 4 and dims[-1] == 1:
        dims = dims[:3]
    if len(dims) == 2:
        raise InputError(f"{where} is a single 2D image {tuple(shape)}; a cine (T, H, W) of at least 2 frames "
                         "is needed", code=ErrorCode.SINGLE_FRAME, field=field)
    if len(dims) != 3:
        raise InputError(f"{where} has shape {tuple(shape)}; expected (T, H, W)", code=ErrorCode.BAD_DIMENSIONS,
                         field=field)
    return dims[0], dims[1], dims[2]


def read_npy(item: InputItem, options: FileOptions, source: SourceReport, limits: StudyLimits) -> Decoded:
    """Decode a ``.npy`` after checking its header (shape, dtype) against the limits."""
    where = source.label
    buf = io.BytesIO(item.data)
    try:
        version = np.lib.format.read_magic(buf)
        read_header = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(buf)  # the header only, no data yet
    except Exception:
        raise InputError(f"{where} is not a valid .npy file", code=ErrorCode.CORRUPT_FILE, field=item.name) from None
    if dtype.hasobject:
        raise InputError(f"{where} holds Python objects; only numeric arrays are accepted", code=ErrorCode.BAD_DTYPE,
                         field=item.name)
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating) or dtype == np.bool_):
        raise InputError(f"{where} has dtype {dtype}; masks must be integer or bool", code=ErrorCode.BAD_DTYPE,
                         field=item.name)
    t, h, w = squeeze_cine(tuple(int(s) for s in shape), where, item.name)
    check_cine_size(t, h, w, where, limits, field=item.name)
    if len(item.data) - buf.tell() < t * h * w * dtype.itemsize:  # before np.load allocates what the header says
        raise InputError(f"{where} is truncated (its data is shorter than its header declares)",
                         code=ErrorCode.CORRUPT_FILE, field=item.name)
    buf.seek(0)
    try:
        arr: NDArray[Any] = np.load(buf, allow_pickle=False)
    except Exception:
        raise InputError(f"{where} is truncated or corrupt", code=ErrorCode.CORRUPT_FILE, field=item.name) from None
    arr = arr.reshape(t, h, w)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise InputError(f"{where} holds NaN or infinite values", code=ErrorCode.BAD_DTYPE, field=item.name)
    kind, lossy = decide_kind(arr, options)
    frames = arr if kind == "masks" else to_grey_uint8(arr)
    return Decoded(frames=frames, kind=kind, options=options, source=source, lossy_masks=lossy)
