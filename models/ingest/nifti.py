"""NIfTI cines (``.nii``/``.nii.gz``): 2D+t label maps or B-mode, with spacing from the header.

Layout: the array is (x, y, t) or (x, y, 1, t). The echo4d frame (row 0 at the probe) is
reached the way ITK writes 2D echo (identity direction in LPS = affine diag(−sx, −sy, ·)
in NIfTI's RAS): columns run along the array axis closest to world x and point to −x (L),
rows run along the other in-plane axis and point to −y (P) (or −z for an x–z plane). A file
whose affine flips or swaps those axes is flipped/transposed back, so a flipped affine
gives the same bundle. Files without any orientation (qform and sform codes 0) are read as
stored, with a warning. Time is never reordered.
"""

from __future__ import annotations

import io
import zlib
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.errors import ErrorCode, InputError
from models.ingest.decoded import Decoded, InputItem, check_cine_size, decide_kind, max_file_bytes, to_grey_uint8
from models.ingest.options import FileOptions
from models.ingest.report import IngestReport, SourceReport
from models.ingest.sniff import Format, gunzip_head, gunzip_limited
from models.study import StudyLimits

_SPACE_TO_MM = {"mm": 1.0, "meter": 1000.0, "micron": 1e-3}
_TIME_TO_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def nifti_header(raw: bytes, where: str) -> Any:
    import nibabel as nib

    for cls in (nib.Nifti1Header, nib.Nifti2Header):
        try:
            return cls.from_fileobj(io.BytesIO(raw), check=False)  # type: ignore[no-untyped-call]
        except Exception:
            continue
    raise InputError(f"{where} has an unreadable NIfTI header", code=ErrorCode.CORRUPT_FILE, field=where)


def check_nifti_header(hdr: Any, where: str, name: str, limits: StudyLimits) -> tuple[int, int, int]:
    """(nx, ny, nt) of a 2D+t header, after checking rank and size against the limits."""
    shape = tuple(int(s) for s in hdr.get_data_shape())
    dims = list(shape)
    while len(dims) > 3 and dims[-1] == 1:
        dims.pop()
    if len(dims) == 4 and dims[2] == 1:
        dims = [dims[0], dims[1], dims[3]]
    if len(dims) == 2:
        raise InputError(f"{where} is a single 2D image; a cine (x, y, t) is needed", code=ErrorCode.SINGLE_FRAME,
                         field=name)
    if len(dims) != 3:
        raise InputError(f"{where} has shape {shape}; expected a 2D+t cine (x, y, t) or (x, y, 1, t)",
                         code=ErrorCode.BAD_DIMENSIONS, field=name)
    nx, ny, nt = dims
    check_cine_size(nt, ny, nx, where, limits, field=name)
    return nx, ny, nt


def _in_plane_orientation(affine: NDArray[np.float64]) -> tuple[bool, bool, bool]:
    """(swap, flip_cols, flip_rows) that bring array axes (0, 1) to (columns → −x, rows → −y/−z)."""
    a = np.asarray(affine, dtype=np.float64)[:3, :2]
    swap = bool(abs(a[0, 1]) > abs(a[0, 0]))  # axis 1 is closer to world x: it is the column axis
    col_axis, row_axis = (1, 0) if swap else (0, 1)
    col_dir = a[:, col_axis]
    row_dir = a[:, row_axis].copy()
    row_dir[0] = 0.0  # the row axis points along y or z, whichever dominates
    row_world = int(np.argmax(np.abs(row_dir)))
    return swap, bool(col_dir[0] > 0), bool(row_dir[row_world] > 0)


def read_nifti(item: InputItem, options: FileOptions, source: SourceReport, limits: StudyLimits,
               report: IngestReport) -> Decoded:
    """Decode a NIfTI-1/2 cine into (T, H, W) frames with spacing (and fps when the header has it)."""
    import nibabel as nib

    where = source.label
    raw = item.data
    if item.fmt == Format.NIFTI_GZ:
        check_nifti_header(nifti_header(gunzip_head(raw, 544), where), where, item.name, limits)  # before inflating
        try:
            inflated = gunzip_limited(raw, max_file_bytes(limits))
        except (OSError, EOFError, zlib.error):
            raise InputError(f"{where} is a truncated or corrupt gzip stream", code=ErrorCode.CORRUPT_FILE,
                             field=item.name) from None
        if inflated is None:
            raise InputError(f"{where} inflates beyond the size limits", code=ErrorCode.TOO_LARGE, field=item.name)
        raw = inflated
    hdr = nifti_header(raw, where)
    shape = tuple(int(s) for s in hdr.get_data_shape())
    nx, ny, nt = check_nifti_header(hdr, where, item.name, limits)
    try:
        img = (nib.Nifti2Image if isinstance(hdr, nib.Nifti2Header) else nib.Nifti1Image).from_bytes(raw)
        data = np.asanyarray(img.dataobj)
    except Exception:
        raise InputError(f"{where} is truncated or corrupt (its data does not match its header)",
                         code=ErrorCode.CORRUPT_FILE, field=item.name) from None
    arr: NDArray[Any] = np.asarray(data).reshape(nx, ny, nt)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise InputError(f"{where} holds NaN or infinite values", code=ErrorCode.BAD_DTYPE, field=item.name)

    zooms = [float(f"{float(z):.7g}") for z in hdr.get_zooms()]  # float32 in the header
    sx, sy = zooms[0], zooms[1]
    if int(hdr["qform_code"]) > 0 or int(hdr["sform_code"]) > 0:
        swap, flip_c, flip_r = _in_plane_orientation(img.affine)
        source.extra["nifti_reorient"] = {"swap_axes": swap, "flip_columns": flip_c, "flip_rows": flip_r}
    else:
        swap, flip_c, flip_r = False, False, False
        report.warn(f"{where}: the NIfTI header has no orientation; read as stored (x = columns, y = rows)")
    if swap:
        arr = arr.transpose(1, 0, 2)
        sx, sy = sy, sx
    if flip_c:
        arr = arr[::-1]
    if flip_r:
        arr = arr[:, ::-1]
    frames = np.ascontiguousarray(arr.transpose(2, 1, 0))  # (T, H, W)

    space_unit, time_unit = hdr.get_xyzt_units()
    scale = _SPACE_TO_MM.get(space_unit)
    decoded_kind, lossy = decide_kind(frames, options)
    out = Decoded(frames=frames if decoded_kind == "masks" else to_grey_uint8(frames), kind=decoded_kind,
                  options=options, source=source, lossy_masks=lossy)
    if sx > 0 and sy > 0:
        out.spacing_mm = (sy * (scale or 1.0), sx * (scale or 1.0))
        out.spacing_source = "nifti_pixdim" if scale else "nifti_pixdim_units_unknown_assumed_mm"
    if len(shape) >= 4 and shape[2] == 1 and time_unit in _TIME_TO_S and len(zooms) >= 4 and zooms[3] > 0:
        out.fps = 1.0 / (zooms[3] * _TIME_TO_S[time_unit])
        out.fps_source = "nifti_pixdim_t"
    return out
