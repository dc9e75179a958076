"""write_outputs: every file, nothing else, report lists them with hashes; atomic writes; preview."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pygltflib
import pytest
from PIL import Image

from models.export.atomic import atomic_write_bytes
from models.export.preview import projected_triangles, render_preview
from models.export.report import validate_report
from models.export.writer import write_outputs
from models.recon.result import ReconResult


def test_write_outputs_writes_exactly_the_contract(tmp_path: Path, beating_result: ReconResult) -> None:
    r = beating_result
    out = tmp_path / "study"
    files = write_outputs(r, out, {"views": ["A4C", "A2C"]})
    frames = [f"meshes/frame_{k:03d}.vtp" for k in range(r.n_frames)]
    expected = {"report.json", "mesh.glb", "meshes/meshes.pvd", "ed.ply", "es.ply", "preview.png", *frames}
    assert set(files) == expected
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert on_disk == expected  # no temp files or extras left behind
    for rel, path in files.items():
        assert path == out.resolve() / rel and path.stat().st_size > 0

    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    validate_report(doc)
    assert doc["timings_s"]["export"] > 0
    listed = {a["path"]: a for a in doc["artifacts"]}
    assert set(listed) == expected - {"report.json"}
    for rel, art in listed.items():
        data = (out / rel).read_bytes()
        assert art["bytes"] == len(data) and art["sha256"] == hashlib.sha256(data).hexdigest()

    gltf = pygltflib.GLTF2().load(str(files["mesh.glb"]))
    assert len(gltf.meshes[0].primitives[0].targets) == r.n_frames
    with Image.open(files["preview.png"]) as img:
        assert img.format == "PNG" and img.size[0] >= 800 and img.size[1] >= 500


def test_rewriting_a_folder_replaces_it_cleanly(tmp_path: Path, result_factory: Any) -> None:
    write_outputs(result_factory(n_frames=7), tmp_path, {})
    files = write_outputs(result_factory(n_frames=4), tmp_path, {})
    assert sorted(p.name for p in (tmp_path / "meshes").iterdir()) == [
        "frame_000.vtp", "frame_001.vtp", "frame_002.vtp", "frame_003.vtp", "meshes.pvd",
    ]
    assert len(files) == 4 + 6


def test_bad_result_writes_nothing(tmp_path: Path, result_factory: Any) -> None:
    good = result_factory()
    bad = result_factory(frame_times_s=good.frame_times_s[::-1].copy())
    with pytest.raises(Exception, match="frame"):
        write_outputs(bad, tmp_path / "out", {})
    assert not any((tmp_path / "out").rglob("*.*"))


class _Exploding:
    """A bytes-like payload whose write fails halfway (simulates a crash during the write)."""

    def __buffer__(self, flags: int) -> memoryview:
        raise OSError("disk on fire")


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    atomic_write_bytes(target, b"old")
    with pytest.raises((OSError, TypeError)):
        atomic_write_bytes(target, _Exploding())  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_preview_projection_faces_the_viewer(beating_result: ReconResult) -> None:
    r = beating_result
    corners, shade = projected_triangles(r.vertices[0], r.faces, "A4C")
    assert corners.shape[1:] == (3, 2) and len(corners) == len(shade)
    assert 0.3 * len(r.faces) < len(corners) < 0.7 * len(r.faces)  # front half of a closed surface
    assert shade.min() > 0 and shade.max() <= 1
    # A4C plane: lateral = +x, depth = +z; the ellipsoid spans x ∈ [-20, 20], z ∈ [0, 80].
    assert np.isclose(corners[..., 0].max(), 20.0, atol=1.0) and np.isclose(corners[..., 1].max(), 80.0, atol=1.0)


def test_preview_survives_nan_volumes(tmp_path: Path, result_factory: Any) -> None:
    base = result_factory()
    vols = base.volumes_ml.copy()
    vols[:] = np.nan
    path = render_preview(result_factory(volumes_ml=vols), tmp_path / "preview.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
