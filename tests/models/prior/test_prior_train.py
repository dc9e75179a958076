"""Training on stand-in shapes: the loss goes down, runs are deterministic and resumable, the CLI writes
a loadable checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from models.prior.checkpoint import load_prior, read_sidecar
from models.prior.config import TrainConfig
from models.prior.train import autodecoder_steps, set_up, train_prior

FAST = TrainConfig.profile("smoke").replace(steps=50, eval_every=25, checkpoint_every=25, n_subjects=6,
                                            n_val_subjects=1)


class Interrupt(Exception):
    pass


class StopAfter:
    """A progress bar that interrupts training after ``n`` steps (simulates a killed run)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, total: int, initial: int, desc: str) -> Any:
        outer = self

        class Bar:
            count = initial

            def update(self, k: int) -> None:
                if desc.startswith("train"):
                    self.count += k
                    if self.count >= outer.n:
                        raise Interrupt

            def set_postfix(self, **kw: Any) -> None:
                pass

            def close(self) -> None:
                pass

        return Bar()


@pytest.mark.slow
def test_smoke_training_reduces_the_loss_and_is_deterministic(tmp_path: Path) -> None:
    a = train_prior(FAST, device="cpu", cache_dir=tmp_path)
    losses = a.curves["train_loss"]
    assert losses[-1] < 0.7 * losses[0]
    assert a.curves["val_l1_3views_mm"] and all(v < 10 for v in a.curves["val_l1_3views_mm"])
    assert torch.all(a.prior.latent_std > 0)
    b = train_prior(FAST, device="cpu", cache_dir=tmp_path)  # second run reuses the cached pool
    for (name, pa), pb in zip(a.prior.state_dict().items(), b.prior.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name


@pytest.mark.slow
def test_interrupted_training_resumes_to_the_same_weights(tmp_path: Path) -> None:
    state = tmp_path / "state.pt"
    straight = train_prior(FAST, device="cpu", cache_dir=tmp_path)
    with pytest.raises(Interrupt):
        train_prior(FAST, device="cpu", cache_dir=tmp_path, state_path=state, progress=StopAfter(40))
    assert torch.load(state, weights_only=True)["step"] == 25
    resumed = train_prior(FAST, device="cpu", cache_dir=tmp_path, state_path=state, resume=True)
    for (name, pa), pb in zip(straight.prior.state_dict().items(), resumed.prior.state_dict().values(),
                              strict=True):
        assert torch.allclose(pa, pb, atol=1e-6), name
    assert resumed.curves["step"] == straight.curves["step"]


def test_resume_refuses_a_state_from_another_config(tmp_path: Path) -> None:
    state = tmp_path / "state.pt"
    with pytest.raises(Interrupt):
        train_prior(FAST, device="cpu", cache_dir=tmp_path, state_path=state, progress=StopAfter(26))
    with pytest.raises(ValueError, match="different training config"):
        train_prior(FAST.replace(seed=5), device="cpu", cache_dir=tmp_path, state_path=state, resume=True)


@pytest.mark.slow
def test_cli_trains_a_smoke_prior_and_writes_a_verified_checkpoint(tmp_path: Path) -> None:
    from cli import app

    out = tmp_path / "prior.pt"
    result = CliRunner().invoke(app, ["train-prior", "--profile", "smoke", "--steps", "30", "--out", str(out),
                                      "--n-eval", "0", "--threads", "1", "--cache-dir", str(tmp_path / "cache"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    prior = load_prior(out, "cpu")
    doc = read_sidecar(out)
    assert doc["train_config"]["steps"] == 30 and doc["cohort_version"] == "standin-ellipsoids-1"
    assert doc["metrics"]["train_steps"] == 30 and "val_l1_mm" in doc["metrics"]
    assert prior.config.latent_dim == TrainConfig.profile("smoke").prior.latent_dim


def test_cli_reports_a_bad_profile_in_one_line(tmp_path: Path) -> None:
    from cli import app

    result = CliRunner().invoke(app, ["train-prior", "--profile", "huge", "--out", str(tmp_path / "p.pt")])
    assert result.exit_code == 2
    assert "unknown training profile" in result.output


@pytest.mark.slow
def test_two_stage_strategy_trains_the_encoder_against_frozen_auto_decoded_codes(tmp_path: Path) -> None:
    cfg = FAST.replace(strategy="two_stage", autodecoder_steps=25, steps=100)
    result = train_prior(cfg, device="cpu", cache_dir=tmp_path)
    losses = result.curves["train_loss"]  # logged every 25 steps: [auto-decoder, encoder × 3]
    assert losses[0] > 1.0 and losses[-1] < losses[1]
    assert result.curves["val_step"] == [50, 75, 100]  # validation only once the encoder stage runs
    assert all(p.requires_grad for p in result.prior.parameters())


@pytest.mark.slow
def test_warm_start_copies_the_checkpoint_weights_and_refuses_another_architecture(tmp_path: Path) -> None:
    from models.prior.checkpoint import save_prior
    from models.prior.model import ShapePrior
    from models.prior.train import warm_start

    a = train_prior(FAST, device="cpu", cache_dir=tmp_path)
    ckpt = save_prior(a.prior, tmp_path / "a.pt", train_config=FAST, metrics={}, curves=a.curves,
                      cohort_version="test")
    fresh = ShapePrior(FAST.prior)
    assert not all(torch.equal(v, w) for v, w in zip(fresh.parameters(), a.prior.parameters(), strict=True))
    warm_start(fresh, ckpt, FAST.prior)
    for (k, v), w in zip(fresh.state_dict().items(), a.prior.state_dict().values(), strict=True):
        assert torch.equal(v, w), k
    with pytest.raises(ValueError, match="PriorConfig differs"):
        warm_start(ShapePrior(FAST.prior.replace(latent_dim=8)), ckpt, FAST.prior.replace(latent_dim=8))
    # train_prior honours init_from: with no steps the result is the checkpoint's weights.
    warm = train_prior(FAST.replace(init_from=str(ckpt), steps=0), device="cpu", cache_dir=tmp_path)
    for v, w in zip(warm.prior.parameters(), a.prior.parameters(), strict=True):
        assert torch.equal(v, w)


def test_set_up_seeds_the_weights_and_adds_codes_for_two_stage() -> None:
    cpu = torch.device("cpu")
    joint = set_up(FAST, 7, cpu, None)
    again = set_up(FAST, 7, cpu, None)
    assert joint.codes is None and set(joint.optims) == {"main"} and joint.start == 0 and autodecoder_steps(FAST) == 0
    for (name, a), b in zip(joint.prior.state_dict().items(), again.prior.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    two = set_up(FAST.replace(strategy="two_stage", autodecoder_steps=20), 7, cpu, None)
    assert two.codes is not None and two.codes.shape == (7, FAST.prior.latent_dim)
    assert set(two.optims) == {"main", "codes"}
    assert autodecoder_steps(FAST.replace(strategy="two_stage", autodecoder_steps=20)) == 20
