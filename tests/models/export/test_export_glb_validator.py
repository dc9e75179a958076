"""mesh.glb passes the Khronos glTF validator (npm ``gltf-validator``, run by node) with 0 errors and
0 warnings, and a generic viewer sees a ventricle of the right size in metres (glTF's unit).

The validator is installed by ``make install`` (``npm ci`` in tools/gltf-validator); without node or
that folder the test skips and says why.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pygltflib
import pytest

from models.export.glb import write_glb
from models.recon.result import ReconResult

TOOL_DIR = Path(__file__).resolve().parents[3] / "tools" / "gltf-validator"
SCRIPT = TOOL_DIR / "validate.js"


def validate(path: Path) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Khronos glTF validator cannot run")
    if not (TOOL_DIR / "node_modules" / "gltf-validator").is_dir():
        pytest.skip(f"the npm package gltf-validator is not installed: run `npm ci` in {TOOL_DIR} (make install)")
    run = subprocess.run([node, str(SCRIPT), str(path)], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    report: dict[str, Any] = json.loads(run.stdout)
    return report


@pytest.mark.parametrize("n_frames", [1, 6])
def test_khronos_validator_finds_no_error_and_no_warning(tmp_path: Path, result_factory: Any,
                                                         n_frames: int) -> None:
    r: ReconResult = result_factory(n_frames=n_frames)
    path = write_glb(r.vertices, r.faces, r.frame_times_s, tmp_path / "mesh.glb")
    report = validate(path)
    issues = report["issues"]
    assert (issues["numErrors"], issues["numWarnings"]) == (0, 0), json.dumps(issues["messages"], indent=1)
    info = report["info"]
    assert info["animationCount"] == 1 and info["totalVertexCount"] == r.vertices.shape[1]


def test_the_validator_reports_a_broken_file(tmp_path: Path, beating_result: ReconResult) -> None:
    """The check can fail: an index out of range is an error the validator must report."""
    r = beating_result
    good = write_glb(r.vertices, r.faces, r.frame_times_s, tmp_path / "good.glb")
    gltf = pygltflib.GLTF2().load(str(good))
    gltf.accessors[gltf.meshes[0].primitives[0].indices].count += 3  # runs past its bufferView
    bad = tmp_path / "bad.glb"
    gltf.save_binary(str(bad))
    assert validate(bad)["issues"]["numErrors"] > 0


def test_a_generic_viewer_sees_metres(tmp_path: Path, beating_result: ReconResult) -> None:
    """trimesh (units-unaware, like most viewers) loads a ventricle 8 cm long, not 80 m."""
    import trimesh

    r = beating_result
    path = write_glb(r.vertices, r.faces, r.frame_times_s, tmp_path / "mesh.glb")
    scene = trimesh.load(path, force="scene")
    extent_m = scene.extents
    np.testing.assert_allclose(extent_m, np.ptp(r.vertices[0], axis=0) * 1e-3, rtol=1e-5)
    assert 0.05 < extent_m.max() < 0.15
