"""Checkpoint round trip and refusal of corrupted or inconsistent checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.checkpoint_files import file_sha256
from models.errors import ErrorCode, ModelError
from models.prior.checkpoint import load_prior, read_sidecar, save_prior
from models.prior.config import TrainConfig
from models.prior.model import ShapePrior

TRAIN = TrainConfig.profile("smoke")


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[ShapePrior, Path]:
    torch.manual_seed(3)
    prior = ShapePrior(TRAIN.prior)
    prior.latent_mean.fill_(0.5)
    path = save_prior(prior, tmp_path / "prior.pt", train_config=TRAIN, metrics={"mae_mm": 1.0},
                      curves={"train_loss": [float(i) for i in range(250)]}, cohort_version="test-1")
    return prior, path


def test_round_trip_gives_identical_outputs(saved: tuple[ShapePrior, Path]) -> None:
    prior, path = saved
    loaded = load_prior(path, "cpu")
    h, w = TRAIN.prior.grid_shape
    masks, present = torch.rand(2, 3, h, w), torch.tensor([[True, False, True], [False, True, False]])
    x = torch.randn(2, 30, 3) * 25
    with torch.no_grad():
        z0, z1 = prior.encode(masks, present), loaded.encode(masks, present)
        assert torch.equal(z0, z1)
        assert torch.equal(prior.sdf(z0, x), loaded.sdf(z1, x))
    assert torch.equal(loaded.latent_mean, prior.latent_mean)
    assert loaded.config == prior.config and not loaded.training


def test_sidecar_records_provenance(saved: tuple[ShapePrior, Path]) -> None:
    _, path = saved
    doc = read_sidecar(path)
    assert doc["sha256"] == file_sha256(path)
    assert doc["cohort_version"] == "test-1" and doc["metrics"] == {"mae_mm": 1.0}
    assert doc["config"] == TRAIN.prior.to_dict() and doc["train_config"] == TRAIN.to_dict()
    assert len(doc["curves"]["train_loss"]) == 100 and doc["curves"]["train_loss"][-1] == 249.0
    assert doc["created"] and doc["code_version"]


def expect_invalid(path: Path, match: str) -> None:
    with pytest.raises(ModelError, match=match) as exc:
        load_prior(path, "cpu")
    assert exc.value.code == ErrorCode.CHECKPOINT_INVALID


@pytest.mark.parametrize("offset", [0, 100, -10])
def test_flipped_bytes_are_refused(saved: tuple[ShapePrior, Path], offset: int) -> None:
    _, path = saved
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    expect_invalid(path, "corrupt")


def test_truncated_file_is_refused(saved: tuple[ShapePrior, Path]) -> None:
    _, path = saved
    path.write_bytes(path.read_bytes()[:1000])
    expect_invalid(path, "corrupt")


def test_config_that_disagrees_with_the_sidecar_is_refused(saved: tuple[ShapePrior, Path]) -> None:
    _, path = saved
    side = path.with_suffix(".json")
    doc = json.loads(side.read_text())
    doc["config"]["latent_dim"] = 999
    side.write_text(json.dumps(doc))
    expect_invalid(path, "config differs")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path: Path) -> None:
    prior = ShapePrior(TRAIN.prior)
    path = save_prior(prior, tmp_path / "p.pt", train_config=None, metrics={}, curves={}, cohort_version="x")
    payload = torch.load(path, weights_only=True)
    payload["state_dict"].pop("decoder.out.weight")
    torch.save(payload, path)
    side = path.with_suffix(".json")
    doc = json.loads(side.read_text())
    doc["sha256"] = file_sha256(path)  # a consistent but wrong checkpoint
    side.write_text(json.dumps(doc))
    expect_invalid(path, "architecture")


def test_missing_files_are_refused(saved: tuple[ShapePrior, Path], tmp_path: Path) -> None:
    _, path = saved
    expect_invalid(tmp_path / "absent.pt", "not found")
    path.with_suffix(".json").unlink()
    expect_invalid(path, "sidecar")
