"""The stage functions of reconstruct_study one by one (analytic prior, no test-time optimisation)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from recon_analytic import analytic_prior

from models.recon.config import ReconConfig
from models.recon.control import StageControl
from models.recon.stages.anchor import anchor_ed
from models.recon.stages.assemble import assemble
from models.recon.stages.encode import encode_views
from models.recon.stages.mesh import mesh_sequence
from models.recon.stages.motion import fit_frames, initial_frame_latents
from tests.models.recon.conftest import ellipsoid_study

CYCLE = [(25.0, 21.0, 45.0), (20.0, 17.0, 40.0)]
CPU = torch.device("cpu")


def test_each_stage_hands_the_next_a_frozen_result(one_thread: None) -> None:
    study = ellipsoid_study(CYCLE, shape=(128, 112))
    cfg = ReconConfig.from_profile("smoke", use_tto=False, pose_init="nominal")
    prior = analytic_prior(init_latent=(0.1, -0.05, 0.02))
    generator = torch.Generator().manual_seed(cfg.seed)
    control = StageControl("test")

    enc = encode_views(study, prior, cfg, CPU)
    assert enc.names == ["A4C", "A2C", "A3C"] and enc.n_frames == 2 and enc.z_enc.shape == (2, 3)
    assert all(not o[0, 0] and o[-1, o.shape[1] // 2] for o in enc.observed.values())  # the apical fan
    with pytest.raises(dataclasses.FrozenInstanceError):
        enc.n_frames = 3  # type: ignore[misc]

    anc = anchor_ed(enc, prior, cfg, CPU, generator, control)
    assert anc.prior is prior and torch.equal(anc.z_ed, enc.z_enc[0])  # no fit: the encoder's ED code
    assert anc.info == {"steps": 0, "stopped_early": False} and len(anc.initial_poses) == 3

    frames = fit_frames(enc, anc, cfg, CPU, generator, control)
    torch.testing.assert_close(frames.z_frames, enc.z_enc)  # delta warm start from the encoder's own ED code
    assert frames.velocity is None and (frames.box_lo < frames.box_hi).all()

    meshed = mesh_sequence(enc, anc, frames, cfg, control)
    assert meshed.vertices.shape[0] == 2 and meshed.single_phase is None
    assert [f.view for f in meshed.view_fits] == enc.names and meshed.ed_frame != meshed.es_frame

    result = assemble(enc, anc, frames, meshed, cfg, CPU, {"encode": 0.0}, [*enc.warnings, *meshed.warnings])
    assert result.extras["latents"].shape == (2, 3) and result.model_info["prior"] == {"name": "analytic-ellipsoid"}
    np.testing.assert_array_equal(result.volumes_ml, meshed.volumes_ml)


def test_initial_frame_latents_delta_and_encoder() -> None:
    z_ed = torch.tensor([1.0, 1.0])
    z_enc = torch.tensor([[0.0, 0.0], [0.5, -0.5], [1.0, 2.0]])
    torch.testing.assert_close(initial_frame_latents(z_ed, z_enc, "delta"),
                               torch.tensor([[1.0, 1.0], [1.5, 0.5], [2.0, 3.0]]))
    torch.testing.assert_close(initial_frame_latents(z_ed, z_enc, "encoder"),
                               torch.tensor([[1.0, 1.0], [0.5, -0.5], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="warm start"):
        initial_frame_latents(z_ed, z_enc, "nope")
