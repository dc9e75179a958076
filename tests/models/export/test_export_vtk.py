"""meshes/*.vtp + meshes.pvd: an independent XML/base64 decoder, meshio for the array encoding."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import meshio
import numpy as np

from models.export.vtk import data_array_element, vtk_file_element, write_vtp_series
from models.recon.result import ReconResult

_NP = {"Float32": "<f4", "Float64": "<f8", "Int64": "<i8", "UInt8": "u1", "Int32": "<i4"}


def _decode(el: ET.Element) -> np.ndarray[Any, Any]:
    raw = base64.b64decode((el.text or "").strip())
    (nbytes,) = np.frombuffer(raw[:8], dtype="<u8")
    data = np.frombuffer(raw[8 : 8 + int(nbytes)], dtype=_NP[el.attrib["type"]])
    assert len(raw) == 8 + int(nbytes)
    comps = int(el.attrib.get("NumberOfComponents", "1"))
    return data.reshape(-1, comps) if comps > 1 else data


def test_vtp_series_round_trip(tmp_path: Path, beating_result: ReconResult) -> None:
    r = beating_result
    t, n = r.vertices.shape[:2]
    pvd = write_vtp_series(r.vertices, r.faces, r.frame_times_s, tmp_path / "meshes")
    assert pvd == tmp_path / "meshes" / "meshes.pvd"
    root = ET.parse(pvd).getroot()
    assert root.attrib["type"] == "Collection"
    sets = root.findall("./Collection/DataSet")
    assert [d.attrib["file"] for d in sets] == [f"frame_{k:03d}.vtp" for k in range(t)]
    np.testing.assert_allclose([float(d.attrib["timestep"]) for d in sets], r.frame_times_s, rtol=0, atol=0)
    assert sorted(p.name for p in pvd.parent.iterdir()) == sorted([*(d.attrib["file"] for d in sets), "meshes.pvd"])

    for k, ds in enumerate(sets):
        vtp = ET.parse(pvd.parent / ds.attrib["file"]).getroot()
        assert vtp.attrib["type"] == "PolyData" and vtp.attrib["header_type"] == "UInt64"
        piece = vtp.find("./PolyData/Piece")
        assert piece is not None
        assert int(piece.attrib["NumberOfPoints"]) == n and int(piece.attrib["NumberOfPolys"]) == len(r.faces)
        points = _decode(vtp.find("./PolyData/Piece/Points/DataArray"))  # type: ignore[arg-type]
        np.testing.assert_allclose(points, r.vertices[k].astype(np.float32), rtol=0, atol=0)
        polys = {el.attrib["Name"]: _decode(el) for el in vtp.findall("./PolyData/Piece/Polys/DataArray")}
        np.testing.assert_array_equal(polys["connectivity"].reshape(-1, 3), r.faces)
        np.testing.assert_array_equal(polys["offsets"], 3 * np.arange(1, len(r.faces) + 1))
        arrays = {el.attrib["Name"]: _decode(el) for el in vtp.findall("./PolyData/Piece/PointData/DataArray")}
        expected = np.linalg.norm(r.vertices[k] - r.vertices[0], axis=1)
        np.testing.assert_allclose(arrays["displacement_from_ed_mm"], expected, atol=1e-5)
        np.testing.assert_allclose(arrays["displacement_vector_mm"], r.vertices[k] - r.vertices[0], atol=1e-5)
        (time_value,) = vtp.findall("./PolyData/FieldData/DataArray")
        assert _decode(time_value)[0] == r.frame_times_s[k]


def test_stale_frames_are_removed(tmp_path: Path, result_factory: Any) -> None:
    long = result_factory(n_frames=8)
    short = result_factory(n_frames=3)
    out = tmp_path / "meshes"
    write_vtp_series(long.vertices, long.faces, long.frame_times_s, out)
    (out / "notes.txt").write_text("keep me")
    write_vtp_series(short.vertices, short.faces, short.frame_times_s, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "frame_000.vtp", "frame_001.vtp", "frame_002.vtp", "meshes.pvd", "notes.txt",
    ]


def test_data_array_encoding_reads_in_meshio(tmp_path: Path, beating_result: ReconResult) -> None:
    """The same DataArray encoder, wrapped as an UnstructuredGrid, is read by meshio's VTK XML reader
    (meshio has no .vtp reader), which checks the base64 + UInt64 header layout independently."""
    r = beating_result
    root = vtk_file_element("UnstructuredGrid")
    piece = ET.SubElement(
        ET.SubElement(root, "UnstructuredGrid"), "Piece",
        {"NumberOfPoints": str(r.vertices.shape[1]), "NumberOfCells": str(len(r.faces))},
    )
    pd = ET.SubElement(piece, "PointData")
    pd.append(data_array_element("height", r.vertices[1][:, 2].astype(np.float64)))
    ET.SubElement(piece, "Points").append(data_array_element("Points", r.vertices[1].astype(np.float32), 3))
    cells = ET.SubElement(piece, "Cells")
    cells.append(data_array_element("connectivity", r.faces.ravel()))
    cells.append(data_array_element("offsets", np.arange(3, 3 * len(r.faces) + 1, 3, dtype=np.int64)))
    cells.append(data_array_element("types", np.full(len(r.faces), 5, dtype=np.uint8)))
    path = tmp_path / "check.vtu"
    path.write_bytes(ET.tostring(root, encoding="utf-8"))
    mesh = meshio.read(path)
    np.testing.assert_allclose(mesh.points, r.vertices[1].astype(np.float32))
    np.testing.assert_array_equal(mesh.cells_dict["triangle"], r.faces)
    np.testing.assert_allclose(mesh.point_data["height"].ravel(), r.vertices[1][:, 2])
