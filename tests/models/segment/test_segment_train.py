"""Segmenter training data and loop: synthetic pairs look right, training learns, smoke profile runs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage

from models.segment.checkpoint import load_checkpoint, save_checkpoint
from models.segment.data import DataConfig, make_pairs
from models.segment.network import SegmenterConfig
from models.segment.train import PROFILES, TrainConfig, one_cycle_lr, profile, train_segmenter


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: much faster than two on a shared, busy CI machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("simulator", "min_dark"), [("classic", 8), ("physics", 6)])
def test_cohort_pairs_are_letterboxed_bmode_with_dark_cavities(simulator: str, min_dark: int) -> None:
    cfg = DataConfig(size=64, n_train=8, n_val=4, samples_per_subject=4, shapes=((96, 96), (96, 128)),
                     simulator=simulator)  # type: ignore[arg-type]
    images, masks = make_pairs(cfg, "train")
    assert images.shape == masks.shape == (8, 64, 64) and images.dtype == masks.dtype == np.uint8
    assert set(np.unique(masks)) == {0, 1}
    dark = 0
    for img, m in zip(images, masks, strict=True):
        assert m.sum() >= 10
        ring = ndimage.binary_dilation(m, iterations=4) & ~ndimage.binary_dilation(m, iterations=1)
        dark += int(np.median(img[m == 1]) < np.median(img[ring]))  # blood darker than the wall around it
    assert dark >= min_dark  # physics: heavy apical clutter / low gain may hide a cavity, as on scanners
    val_images, _ = make_pairs(cfg, "val")
    assert not np.array_equal(val_images[:4], images[:4])  # other subjects


@pytest.mark.slow
def test_training_learns_blobs() -> None:
    cfg = TrainConfig(profile="test", steps=80, batch_size=8, lr=5e-3, eval_every=40,
                      network=SegmenterConfig(size=32, base_channels=8, depth=2),
                      data=DataConfig(size=32, n_train=64, n_val=16, source="blobs"))
    result = train_segmenter(cfg, "cpu")
    assert result.curves["val_dice_mean"][-1] > 0.8
    assert np.mean(result.curves["loss"][-10:]) < np.mean(result.curves["loss"][:10])
    assert not result.model.training


@pytest.mark.slow
def test_smoke_profile_end_to_end(tmp_path: Path) -> None:
    cfg = profile("smoke", steps=6)
    cfg = replace(cfg, eval_every=3)
    result = train_segmenter(cfg, "cpu")
    assert set(result.metrics) >= {"val_dice_mean", "val_dice_median", "val_dice_p05", "train_seconds"}
    pt = save_checkpoint(result.model, tmp_path / "s.pt", train_config=cfg.to_dict(), metrics=result.metrics,
                         curves=result.curves, cohort_version="test")
    model, doc = load_checkpoint(pt, "cpu")
    assert not model.training
    assert doc["train_config"]["profile"] == "smoke" and doc["config"]["size"] == 64


def test_profiles() -> None:
    assert set(PROFILES) == {"smoke", "default", "physics", "finetune"}
    assert profile("default", seed=3).data.seed == 3
    assert profile("physics").data.simulator == "physics" and profile("default").data.simulator == "classic"
    with pytest.raises(ValueError):
        profile("huge")


def test_one_cycle_schedule_follows_progress() -> None:
    lrs = [one_cycle_lr(1e-3, p) for p in np.linspace(0.0, 1.0, 101)]
    assert lrs[0] == pytest.approx(4e-5) and max(lrs) == pytest.approx(1e-3, rel=1e-3)
    assert int(np.argmax(lrs)) == 10 and lrs[-1] < 1e-6 and all(np.diff(lrs[10:]) <= 0)


@pytest.mark.slow
def test_time_budget_stops_training(one_thread: None) -> None:
    cfg = TrainConfig(profile="test", steps=10_000, batch_size=4, budget_s=3.0, eval_every=10_000,
                      network=SegmenterConfig(size=32, base_channels=4, depth=2),
                      data=DataConfig(size=32, n_train=16, n_val=4, source="blobs"))
    result = train_segmenter(cfg, "cpu")
    assert 0 < result.metrics["steps_done"] < 10_000 and result.metrics["train_seconds"] < 10.0
