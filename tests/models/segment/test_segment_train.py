"""Segmenter training data and loop: synthetic pairs look right, training learns, smoke profile runs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from models.segment.checkpoint import load_checkpoint, save_checkpoint
from models.segment.data import DataConfig, make_pairs
from models.segment.network import SegmenterConfig
from models.segment.train import PROFILES, TrainConfig, profile, train_segmenter


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: much faster than two on a shared, busy CI machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_cohort_pairs_are_letterboxed_bmode_with_dark_cavities() -> None:
    cfg = DataConfig(size=64, n_train=8, n_val=4, samples_per_subject=4, shapes=((96, 96), (96, 128)))
    images, masks = make_pairs(cfg, "train")
    assert images.shape == masks.shape == (8, 64, 64) and images.dtype == masks.dtype == np.uint8
    assert set(np.unique(masks)) == {0, 1}
    for img, m in zip(images, masks, strict=True):
        assert m.sum() >= 10
        inside = img[m == 1].mean()
        sector = img[(m == 0) & (img > 0)].mean()
        assert inside < sector  # blood is darker than tissue
    val_images, _ = make_pairs(cfg, "val")
    assert not np.array_equal(val_images[:4], images[:4])  # other subjects


@pytest.mark.slow
def test_training_learns_blobs() -> None:
    cfg = TrainConfig(profile="test", steps=80, batch_size=8, lr=5e-3, eval_every=40,
                      network=SegmenterConfig(size=32, base_channels=8, depth=2),
                      data=DataConfig(size=32, n_train=64, n_val=16, source="blobs"))
    result = train_segmenter(cfg)
    assert result.curves["val_dice_mean"][-1] > 0.8
    assert np.mean(result.curves["loss"][-10:]) < np.mean(result.curves["loss"][:10])
    assert not result.model.training


@pytest.mark.slow
def test_smoke_profile_end_to_end(tmp_path: Path) -> None:
    cfg = profile("smoke", steps=6)
    cfg = replace(cfg, eval_every=3)
    result = train_segmenter(cfg)
    assert set(result.metrics) >= {"val_dice_mean", "val_dice_median", "val_dice_p05", "train_seconds"}
    pt = save_checkpoint(result.model, tmp_path / "s.pt", train_config=cfg.to_dict(), metrics=result.metrics,
                         curves=result.curves, cohort_version="test")
    model, doc = load_checkpoint(pt)
    assert not model.training
    assert doc["train_config"]["profile"] == "smoke" and doc["config"]["size"] == 64


def test_profiles() -> None:
    assert set(PROFILES) == {"smoke", "default"}
    assert profile("default", seed=3).data.seed == 3
    with pytest.raises(ValueError):
        profile("huge")
