"""mesh.glb: pygltflib round trip (morph targets, animation, accessors) and GLB container rules."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pygltflib
import pytest

from models.export.glb import glb_bytes, vertex_normals, write_glb
from models.recon.result import ReconResult


def _accessor_array(gltf: pygltflib.GLTF2, index: int) -> np.ndarray[Any, Any]:
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    blob = gltf.binary_blob()
    dtype = {pygltflib.FLOAT: np.float32, pygltflib.UNSIGNED_INT: np.uint32}[acc.componentType]
    width = {"SCALAR": 1, "VEC3": 3}[acc.type]
    start = view.byteOffset + acc.byteOffset
    data = np.frombuffer(blob, dtype=dtype, count=acc.count * width, offset=start)
    return data.reshape(acc.count, width) if width > 1 else data


def _target(target: Any, name: str) -> int:
    """pygltflib loads morph targets as plain dicts."""
    return int(target[name] if isinstance(target, dict) else getattr(target, name))


def test_glb_round_trip(tmp_path: Path, beating_result: ReconResult) -> None:
    r = beating_result
    t, n = r.vertices.shape[:2]
    path = write_glb(r.vertices, r.faces, r.frame_times_s, tmp_path / "mesh.glb")
    gltf = pygltflib.GLTF2().load(str(path))
    assert gltf.asset.version == "2.0" and gltf.asset.extras["units"] == "m"
    prim = gltf.meshes[0].primitives[0]
    assert len(prim.targets) == t
    assert gltf.meshes[0].weights == [0.0] * t
    assert gltf.accessors[prim.attributes.POSITION].count == n
    assert gltf.accessors[prim.indices].count == 3 * len(r.faces)
    np.testing.assert_array_equal(_accessor_array(gltf, prim.indices).reshape(-1, 3), r.faces)

    base = _accessor_array(gltf, prim.attributes.POSITION)
    for k, target in enumerate(prim.targets):
        delta = _accessor_array(gltf, _target(target, "POSITION"))
        # glTF's unit is the metre: 1e-8 m = 1e-5 mm (float32 rounding at ~0.1 m)
        np.testing.assert_allclose(base + delta, (r.vertices[k] * 1e-3).astype(np.float32), atol=1e-8, rtol=0)
        normals = _accessor_array(gltf, prim.attributes.NORMAL) + _accessor_array(gltf, _target(target, "NORMAL"))
        np.testing.assert_allclose(normals, vertex_normals(r.vertices[k], r.faces), atol=1e-5)
    assert not _accessor_array(gltf, _target(prim.targets[0], "POSITION")).any()

    # POSITION accessors (base and targets) carry exact min/max.
    for idx in [prim.attributes.POSITION] + [_target(tg, "POSITION") for tg in prim.targets]:
        acc, data = gltf.accessors[idx], _accessor_array(gltf, idx)
        assert acc.min == data.min(axis=0).tolist() and acc.max == data.max(axis=0).tolist()

    (anim,) = gltf.animations
    (sampler,) = anim.samplers
    (channel,) = anim.channels
    assert sampler.interpolation == "LINEAR"
    assert channel.target.path == "weights" and channel.target.node == 0
    assert gltf.nodes[0].mesh == 0
    times = _accessor_array(gltf, sampler.input)
    np.testing.assert_allclose(times, r.frame_times_s, atol=1e-7)
    assert gltf.accessors[sampler.input].min == [float(times[0])]
    weights = _accessor_array(gltf, sampler.output)
    assert weights.size == t * t
    np.testing.assert_array_equal(weights.reshape(t, t), np.eye(t))


def test_glb_container_alignment(beating_result: ReconResult) -> None:
    r = beating_result
    data = glb_bytes(r.vertices, r.faces, r.frame_times_s)
    magic, version, length = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<II", data, 12)
    assert json_type == 0x4E4F534A and json_len % 4 == 0
    doc = json.loads(data[20 : 20 + json_len])
    bin_len, bin_type = struct.unpack_from("<II", data, 20 + json_len)
    assert bin_type == 0x004E4942 and bin_len % 4 == 0
    assert 28 + json_len + bin_len == len(data)
    assert doc["buffers"] == [{"byteLength": bin_len}]
    for view in doc["bufferViews"]:
        assert view["byteOffset"] % 4 == 0
        assert view["byteOffset"] + view["byteLength"] <= bin_len


def test_single_frame_is_valid(beating_result: ReconResult) -> None:
    r = beating_result
    gltf = pygltflib.GLTF2.load_from_bytes(glb_bytes(r.vertices[:1], r.faces, np.array([0.0])))
    assert len(gltf.meshes[0].primitives[0].targets) == 1


@pytest.mark.parametrize("times", [[0.0, 0.0, 0.1], [-0.1, 0.0, 0.1], [0.0, float("nan"), 0.2], [0.0, 0.1]])
def test_bad_frame_times_are_refused(beating_result: ReconResult, times: list[float]) -> None:
    with pytest.raises(ValueError, match="frame"):
        glb_bytes(beating_result.vertices[:3], beating_result.faces, np.array(times))


def test_vertex_normals_of_a_sphere_point_outward() -> None:
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=3, radius=5.0)
    n = vertex_normals(np.asarray(s.vertices), np.asarray(s.faces, dtype=np.int64))
    radial = s.vertices / np.linalg.norm(s.vertices, axis=1, keepdims=True)
    assert np.einsum("ij,ij->i", n, radial).min() > 0.999
