"""ed.ply / es.ply: binary little-endian PLY read back by trimesh."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from models.export.ply import write_ply
from models.recon.result import ReconResult


def test_ply_round_trip(tmp_path: Path, beating_result: ReconResult) -> None:
    v, f = beating_result.vertices[2], beating_result.faces
    path = write_ply(v, f, tmp_path / "es.ply", comment="ES frame 2 — naïve")
    head = path.read_bytes()[:200]
    assert head.startswith(b"ply\nformat binary_little_endian 1.0\n")
    assert b"comment units mm" in head
    mesh = trimesh.load(path, process=False)
    np.testing.assert_allclose(mesh.vertices, v.astype(np.float32), rtol=0, atol=0)
    np.testing.assert_array_equal(mesh.faces, f)


def test_ply_refuses_bad_input(tmp_path: Path, beating_result: ReconResult) -> None:
    v, f = beating_result.vertices[0], beating_result.faces
    with pytest.raises(ValueError):
        write_ply(v, f + len(v), tmp_path / "x.ply")
    bad = v.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        write_ply(bad, f, tmp_path / "x.ply")
    assert not list(tmp_path.iterdir())
