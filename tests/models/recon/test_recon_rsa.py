"""Meshing and Radial SDF Alignment with the analytic ellipsoid decoder (closed-form shapes)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from recon_analytic import analytic_prior, ellipsoid_volume_ml

from models.geometry.mesh import is_watertight, mesh_volume_ml
from models.recon.motion import VelocityField
from models.recon.rsa import MeshConfig, extract_mesh, per_frame_meshes, propagate_rsa

BASE = (22.0, 22.0, 42.0)
AXES = [(25.0, 21.0, 45.0), (23.0, 19.5, 43.0), (20.0, 17.0, 40.0), (22.0, 18.0, 42.0)]
LO, HI = np.array([-35.0, -35.0, -8.0]), np.array([35.0, 35.0, 100.0])


def _latents() -> torch.Tensor:
    return torch.log(torch.tensor(AXES) / torch.tensor(BASE))


def test_extract_mesh_is_closed_and_matches_the_closed_form_volume() -> None:
    prior = analytic_prior(BASE)
    mesh, warnings = extract_mesh(prior, _latents()[0], LO, HI, MeshConfig(grid_mm=1.5))
    assert not warnings
    assert is_watertight(mesh)
    assert mesh_volume_ml(mesh) == pytest.approx(ellipsoid_volume_ml(AXES[0]), rel=0.01)


@pytest.mark.parametrize("with_velocity", [False, True])
def test_rsa_keeps_topology_and_puts_every_vertex_on_the_zero_level_set(with_velocity: bool) -> None:
    prior = analytic_prior(BASE)
    z = _latents()
    mesh, _ = extract_mesh(prior, z[0], LO, HI, MeshConfig(grid_mm=2.0))
    velocity = None
    if with_velocity:
        torch.manual_seed(0)
        velocity = VelocityField(width=32)
        with torch.no_grad():
            for p in velocity.parameters():
                p.normal_(0.0, 0.05)  # an arbitrary (non-zero) field: RSA must still land on the surface
    verts = propagate_rsa(prior, z, mesh.vertices, velocity, MeshConfig(projection_iterations=3))
    assert verts.shape == (len(AXES), len(mesh.vertices), 3)
    np.testing.assert_array_equal(verts[0], mesh.vertices.astype(np.float32).astype(np.float64))
    for t in range(len(AXES)):
        with torch.no_grad():
            f = prior.sdf(z[t: t + 1], torch.tensor(verts[t], dtype=torch.float32)[None])[0]
        assert float(f.abs().max()) < 0.05, f"frame {t}: max |f| = {float(f.abs().max()):.3f} mm"
        frame_mesh = mesh.with_vertices(verts[t])
        assert is_watertight(frame_mesh)  # same faces, same vertex order
        assert mesh_volume_ml(frame_mesh) == pytest.approx(ellipsoid_volume_ml(AXES[t]), rel=0.02)


def test_per_frame_marching_cubes_changes_topology_but_not_volume() -> None:
    prior = analytic_prior(BASE)
    meshes = per_frame_meshes(prior, _latents(), LO, HI, MeshConfig(grid_mm=2.0))
    assert len({len(m.vertices) for m in meshes}) > 1
    for m, a in zip(meshes, AXES, strict=True):
        assert mesh_volume_ml(m) == pytest.approx(ellipsoid_volume_ml(a), rel=0.02)
