"""``mesh.glb``: the beating LV as one binary glTF 2.0 file with morph targets and a timed animation.

Layout: one node, one mesh, one triangle primitive whose base geometry is frame 0 (ED):
POSITION, NORMAL and uint32 indices. Frame k is morph target k (POSITION and NORMAL deltas
from frame 0; target 0's deltas are zero). One animation drives the node's ``weights``: its
sampler input is the frame times (s), its output a one-hot weight vector per keyframe (T×T
floats) with LINEAR interpolation, so a viewer blends frame k into frame k+1 between their
times and the mesh plays through the cycle. Positions are in metres (glTF's unit, so a generic
viewer shows a ventricle about 8 cm tall) in the canonical LV frame; ``asset.extras.units`` says
``m``. The inputs, like the VTP/PLY outputs, are in mm.

The binary container (12-byte header, JSON chunk padded with spaces, BIN chunk padded with
zeros, both to 4 bytes) is produced by pygltflib; every bufferView is 4-byte aligned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np
import pygltflib
from numpy.typing import NDArray

from models.export.atomic import atomic_write_bytes

GENERATOR: Final[str] = "echo4d models.export.glb"
ARRAY_BUFFER: Final[int] = 34962
ELEMENT_ARRAY_BUFFER: Final[int] = 34963
LV_COLOUR_RGBA: Final[list[float]] = [0.80, 0.22, 0.22, 1.0]
METRES_PER_MM: Final[float] = 1e-3


def vertex_normals(vertices: NDArray[np.float64], faces: NDArray[np.int64]) -> NDArray[np.float64]:
    """Unit area-weighted vertex normals (N, 3) of an outward-wound mesh (zero for isolated vertices)."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    tri = v[f]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # length = 2 × area
    acc = np.zeros_like(v)
    for corner in range(3):
        np.add.at(acc, f[:, corner], face_n)
    norm = np.linalg.norm(acc, axis=1, keepdims=True)
    out: NDArray[np.float64] = np.divide(acc, norm, out=np.zeros_like(acc), where=norm > 0)
    return out


def check_sequence(
    vertices: NDArray[np.float64], faces: NDArray[np.int64], frame_times_s: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64]]:
    """Validate a mesh sequence: vertices (T, N, 3) finite, faces (F, 3) in range, times (T,)
    finite, non-negative at the start and strictly increasing. Returns contiguous copies."""
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    t = np.ascontiguousarray(frame_times_s, dtype=np.float64).reshape(-1)
    if v.ndim != 3 or v.shape[2] != 3 or v.shape[0] < 1 or v.shape[1] < 3:
        raise ValueError(f"vertices must be (T, N, 3) with T >= 1 and N >= 3, got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) < 1:
        raise ValueError(f"faces must be (F, 3) with F >= 1, got {f.shape}")
    if f.min() < 0 or f.max() >= v.shape[1]:
        raise ValueError("faces index vertices out of range")
    if not np.isfinite(v).all():
        raise ValueError("vertices hold non-finite values")
    if len(t) != v.shape[0]:
        raise ValueError(f"{v.shape[0]} frames but {len(t)} frame times")
    if not np.isfinite(t).all() or t[0] < 0 or (np.diff(t) <= 0).any():
        raise ValueError("frame times must be finite, start at >= 0 s and increase strictly")
    return v, f, t


class _BlobBuilder:
    """Accumulates 4-byte aligned bufferViews and their accessors."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[pygltflib.BufferView] = []
        self.accessors: list[pygltflib.Accessor] = []

    def add(
        self,
        data: NDArray[Any],
        component_type: int,
        accessor_type: str,
        target: int | None,
        with_bounds: bool,
        name: str,
    ) -> int:
        raw = np.ascontiguousarray(data).tobytes()
        self.blob += b"\0" * (-len(self.blob) % 4)
        self.views.append(
            pygltflib.BufferView(buffer=0, byteOffset=len(self.blob), byteLength=len(raw), target=target)
        )
        self.blob += raw
        width = {"SCALAR": 1, "VEC3": 3}[accessor_type]
        flat = np.asarray(data).reshape(-1, width)
        accessor = pygltflib.Accessor(
            bufferView=len(self.views) - 1,
            byteOffset=0,
            componentType=component_type,
            count=len(flat),
            type=accessor_type,
            name=name,
        )
        if with_bounds:
            accessor.min = [float(x) for x in flat.min(axis=0)]
            accessor.max = [float(x) for x in flat.max(axis=0)]
        self.accessors.append(accessor)
        return len(self.accessors) - 1

    def finished_blob(self) -> bytes:
        return bytes(self.blob) + b"\0" * (-len(self.blob) % 4)


def glb_bytes(
    vertices: NDArray[np.float64], faces: NDArray[np.int64], frame_times_s: NDArray[np.float64],
    quality: dict[str, Any] | None = None,
) -> bytes:
    """The GLB file content for vertices (T, N, 3) mm, faces (F, 3) and frame times (T,) s; written in metres;
    ``quality`` (``{"level": ..., "score": ...}``) goes into ``asset.extras.quality``."""
    v_mm, f, times = check_sequence(vertices, faces, frame_times_s)
    v = v_mm * METRES_PER_MM
    n_frames = v.shape[0]
    base = v[0]
    base_normals = vertex_normals(base, f)
    b = _BlobBuilder()
    pos = b.add(base.astype(np.float32), pygltflib.FLOAT, "VEC3", ARRAY_BUFFER, True, "ed_position")
    nrm = b.add(base_normals.astype(np.float32), pygltflib.FLOAT, "VEC3", ARRAY_BUFFER, False, "ed_normal")
    idx = b.add(f.astype(np.uint32).ravel(), pygltflib.UNSIGNED_INT, "SCALAR", ELEMENT_ARRAY_BUFFER, False, "indices")
    targets: list[pygltflib.Attributes] = []
    names = [f"frame_{k:03d}" for k in range(n_frames)]
    for k in range(n_frames):
        # Deltas in float32 from float32 positions, so base + delta reproduces frame k's float32 positions.
        d_pos = v[k].astype(np.float32) - base.astype(np.float32)
        d_nrm = (vertex_normals(v[k], f) - base_normals).astype(np.float32)
        t_pos = b.add(d_pos, pygltflib.FLOAT, "VEC3", ARRAY_BUFFER, True, f"{names[k]}_dposition")
        t_nrm = b.add(d_nrm, pygltflib.FLOAT, "VEC3", ARRAY_BUFFER, False, f"{names[k]}_dnormal")
        targets.append(pygltflib.Attributes(POSITION=t_pos, NORMAL=t_nrm))
    t_in = b.add(times.astype(np.float32), pygltflib.FLOAT, "SCALAR", None, True, "frame_times_s")
    weights = np.eye(n_frames, dtype=np.float32)  # keyframe k: weight 1 on target k
    t_out = b.add(weights.ravel(), pygltflib.FLOAT, "SCALAR", None, False, "frame_weights")
    blob = b.finished_blob()

    primitive = pygltflib.Primitive(
        attributes=pygltflib.Attributes(POSITION=pos, NORMAL=nrm),
        indices=idx,
        material=0,
        mode=pygltflib.TRIANGLES,
        targets=targets,
    )
    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(
            version="2.0",
            generator=GENERATOR,
            extras={"units": "m", "coordinate_frame": "echo4d-canonical-lv", "frame_times_s": times.tolist(),
                    **({"quality": dict(quality)} if quality is not None else {})},
        ),
        scene=0,
        scenes=[pygltflib.Scene(nodes=[0], name="echo4d")],
        nodes=[pygltflib.Node(mesh=0, name="lv_endocardium")],
        meshes=[
            pygltflib.Mesh(
                name="lv_endocardium",
                primitives=[primitive],
                weights=[0.0] * n_frames,
                extras={"targetNames": names, "units": "m"},
            )
        ],
        materials=[
            pygltflib.Material(
                name="lv",
                doubleSided=True,
                pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
                    baseColorFactor=LV_COLOUR_RGBA, metallicFactor=0.0, roughnessFactor=0.6
                ),
            )
        ],
        animations=[
            pygltflib.Animation(
                name="cardiac_cycle",
                samplers=[pygltflib.AnimationSampler(input=t_in, output=t_out, interpolation="LINEAR")],
                channels=[
                    pygltflib.AnimationChannel(
                        sampler=0, target=pygltflib.AnimationChannelTarget(node=0, path="weights")
                    )
                ],
            )
        ],
        accessors=b.accessors,
        bufferViews=b.views,
        buffers=[pygltflib.Buffer(byteLength=len(blob))],
    )
    gltf.set_binary_blob(blob)
    return b"".join(gltf.save_to_bytes())


def write_glb(
    vertices: NDArray[np.float64], faces: NDArray[np.int64], frame_times_s: NDArray[np.float64], path: Path,
    quality: dict[str, Any] | None = None,
) -> Path:
    """Write the animated GLB of a mesh sequence (vertices (T, N, 3) mm, faces (F, 3), times (T,) s)
    to ``path`` atomically; returns ``path``."""
    return atomic_write_bytes(Path(path), glb_bytes(vertices, faces, frame_times_s, quality))
