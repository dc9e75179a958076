"""``meshes/``: a ParaView time series, one XML PolyData ``.vtp`` per frame plus ``meshes.pvd``.

Each ``frame_XXX.vtp`` holds the frame's points (Float32, mm, canonical LV frame), its
triangles (``Polys``: Int64 connectivity and offsets) and two point arrays: the displacement
from frame 0 (ED) as a vector and its magnitude, both in mm. Arrays are inline base64
"binary" with an UInt64 byte-count header (VTK's XML format, little endian, uncompressed),
so no VTK installation is needed to write them. ``meshes.pvd`` lists the frames with their
times in seconds; open it in ParaView to play the cycle. With a quality assessment, every
frame's ``FieldData`` also holds ``QualityLevel`` (Int32: 0 good, 1 review, 2 unreliable) and
``QualityScore`` (Float64, the score behind the level; see docs/report-schema.md).
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from models.export.atomic import atomic_write_bytes
from models.export.glb import check_sequence

PVD_NAME: Final[str] = "meshes.pvd"
QUALITY_LEVEL_CODES: Final[dict[str, int]] = {"good": 0, "review": 1, "unreliable": 2}
FRAME_FILE_RE: Final[re.Pattern[str]] = re.compile(r"^frame_\d+\.vtp$")
_VTK_TYPES: Final[dict[str, str]] = {
    "float32": "Float32",
    "float64": "Float64",
    "int32": "Int32",
    "int64": "Int64",
    "uint8": "UInt8",
}


def data_array_element(name: str | None, values: NDArray[Any], n_components: int = 1) -> ET.Element:
    """A VTK XML ``DataArray`` element with inline base64 binary content (UInt64 header,
    little endian). ``values`` is flattened in C order; its dtype picks the VTK type."""
    arr = np.ascontiguousarray(values)
    arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    vtk_type = _VTK_TYPES.get(arr.dtype.name)
    if vtk_type is None:
        raise ValueError(f"no VTK type for dtype {arr.dtype}")
    raw = arr.tobytes()
    attrib = {"type": vtk_type, "NumberOfComponents": str(n_components), "format": "binary"}
    if name is not None:
        attrib["Name"] = name
    el = ET.Element("DataArray", attrib)
    el.text = base64.b64encode(np.uint64(len(raw)).astype("<u8").tobytes() + raw).decode("ascii")
    return el


def vtk_file_element(data_type: str) -> ET.Element:
    """The root ``VTKFile`` element used by every file written here."""
    return ET.Element(
        "VTKFile", {"type": data_type, "version": "1.0", "byte_order": "LittleEndian", "header_type": "UInt64"}
    )


def polydata_bytes(
    points: NDArray[np.float64],
    faces: NDArray[np.int64],
    point_data: dict[str, NDArray[np.float64]],
    time_s: float | None = None,
    field_data: dict[str, NDArray[Any]] | None = None,
) -> bytes:
    """One ``.vtp`` document: points (N, 3) mm, triangles (F, 3), point arrays (N,) or (N, k);
    ``field_data``: one-tuple arrays (name → (1,) array) written beside ``TimeValue``."""
    root = vtk_file_element("PolyData")
    poly = ET.SubElement(root, "PolyData")
    fields = {**({"TimeValue": np.array([time_s], dtype=np.float64)} if time_s is not None else {}),
              **(field_data or {})}
    if fields:
        field = ET.SubElement(poly, "FieldData")
        for name, values in fields.items():
            field.append(data_array_element(name, values))
            field[-1].set("NumberOfTuples", "1")
    piece = ET.SubElement(
        poly,
        "Piece",
        {
            "NumberOfPoints": str(len(points)),
            "NumberOfVerts": "0",
            "NumberOfLines": "0",
            "NumberOfStrips": "0",
            "NumberOfPolys": str(len(faces)),
        },
    )
    pd_attrib = {}
    scalars = [k for k, a in point_data.items() if np.ndim(a) == 1]
    vectors = [k for k, a in point_data.items() if np.ndim(a) == 2 and np.shape(a)[1] == 3]
    if scalars:
        pd_attrib["Scalars"] = scalars[0]
    if vectors:
        pd_attrib["Vectors"] = vectors[0]
    pd = ET.SubElement(piece, "PointData", pd_attrib)
    for name, arr in point_data.items():
        a = np.asarray(arr, dtype=np.float32)
        if a.shape[0] != len(points):
            raise ValueError(f"point array {name!r} has {a.shape[0]} rows for {len(points)} points")
        pd.append(data_array_element(name, a, 1 if a.ndim == 1 else a.shape[1]))
    pts = ET.SubElement(piece, "Points")
    pts.append(data_array_element("Points", np.asarray(points, dtype=np.float32), 3))
    polys = ET.SubElement(piece, "Polys")
    polys.append(data_array_element("connectivity", np.asarray(faces, dtype=np.int64).ravel()))
    polys.append(data_array_element("offsets", np.arange(3, 3 * len(faces) + 1, 3, dtype=np.int64)))
    return _xml_bytes(root)


def pvd_bytes(files: list[str], times_s: list[float]) -> bytes:
    """A ``.pvd`` collection listing ``files`` (relative paths) at ``times_s`` seconds."""
    root = ET.Element("VTKFile", {"type": "Collection", "version": "0.1", "byte_order": "LittleEndian"})
    coll = ET.SubElement(root, "Collection")
    for name, t in zip(files, times_s, strict=True):
        ET.SubElement(coll, "DataSet", {"timestep": repr(float(t)), "group": "", "part": "0", "file": name})
    return _xml_bytes(root)


def frame_file_name(index: int, n_frames: int) -> str:
    """``frame_007.vtp`` (at least three digits, more when there are 1000+ frames)."""
    return f"frame_{index:0{max(3, len(str(n_frames - 1)))}d}.vtp"


def write_vtp_series(
    vertices: NDArray[np.float64], faces: NDArray[np.int64], frame_times_s: NDArray[np.float64], out_dir: Path,
    quality: dict[str, Any] | None = None,
) -> Path:
    """Write ``frame_XXX.vtp`` per frame and ``meshes.pvd`` into ``out_dir`` (each file atomic);
    vertices (T, N, 3) mm, faces (F, 3), times (T,) s. Stale ``frame_*.vtp`` files from an
    earlier, longer sequence are removed so the folder holds exactly this series. Returns the
    ``.pvd`` path."""
    v, f, times = check_sequence(vertices, faces, frame_times_s)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [frame_file_name(k, len(v)) for k in range(len(v))]
    field_data: dict[str, NDArray[Any]] | None = None if quality is None else {
        "QualityLevel": np.array([QUALITY_LEVEL_CODES[quality["level"]]], dtype=np.int32),
        "QualityScore": np.array([float(quality["score"])], dtype=np.float64)}
    for k, name in enumerate(names):
        disp = v[k] - v[0]
        data = {"displacement_from_ed_mm": np.linalg.norm(disp, axis=1), "displacement_vector_mm": disp}
        atomic_write_bytes(out / name, polydata_bytes(v[k], f, data, float(times[k]), field_data))
    for stale in out.iterdir():
        if FRAME_FILE_RE.match(stale.name) and stale.name not in names:
            stale.unlink()
    return atomic_write_bytes(out / PVD_NAME, pvd_bytes(names, times.tolist()))


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root, space="  ")
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0"?>\n' + body + b"\n"
