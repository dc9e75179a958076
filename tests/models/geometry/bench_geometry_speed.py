"""Speed of signed_distance and slice_mask for docs/geometry.md (not a test: run it by hand).

    OMP_NUM_THREADS=1 .venv/bin/python tests/models/geometry/bench_geometry_speed.py

One core, process CPU time, best of 3, on a 5120-face ellipsoid LV (25 x 25 x 45 mm semi-axes).
"""

from __future__ import annotations

import time

import numpy as np

from models.geometry.frames import nominal_plane
from models.geometry.mesh import ellipsoid
from models.geometry.sdf import MeshDistance
from models.geometry.slicing import slice_mask


def main() -> None:
    rng = np.random.default_rng(0)
    mesh = ellipsoid((25.0, 25.0, 45.0), 4, (0.0, 0.0, 45.0))  # 5120 faces, 2562 vertices
    v, n = mesh.vertices, 20000
    near = v[rng.integers(0, len(v), n)] + rng.normal(0, 2.0, (n, 3))
    uniform = rng.uniform([-30, -30, -5], [30, 30, 95], (n, 3))
    sets = {
        "near (vertex + N(0, 2 mm))": near,
        "uniform in bounding box": uniform,
        "mix 80/20": np.concatenate([near[:16000], uniform[:4000]]),
    }
    clk = time.process_time
    build = 1e9
    for _ in range(3):
        t = clk()
        md = MeshDistance(mesh)
        build = min(build, clk() - t)
    print(f"MeshDistance build: {build * 1e3:.1f} ms")
    for name, x in sets.items():
        best = 1e9
        for _ in range(3):
            t = clk()
            md.signed_distance(x)
            best = min(best, clk() - t)
        print(f"signed_distance, {name}: {n / best / 1e3:.0f} k points/s")
    plane = nominal_plane("A2C")
    best = 1e9
    for _ in range(3):
        t = clk()
        for _ in range(50):
            slice_mask(mesh, plane)
        best = min(best, (clk() - t) / 50)
    print(f"slice_mask 5120 faces -> 224x224: {best * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
