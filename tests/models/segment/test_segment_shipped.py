"""The shipped segmenter checkpoint: verifies, and segments held-out synthetic B-mode well."""

from __future__ import annotations

import numpy as np
import pytest

from models.segment.checkpoint import DEFAULT_CHECKPOINT, read_sidecar
from models.segment.data import VAL_SEED_OFFSET, DataConfig, _cohort_subject_pairs
from models.segment.runtime import load_segmenter


@pytest.fixture(scope="module")
def shipped() -> object:
    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip("no shipped segmenter checkpoint yet: run `echo4d train-segmenter --profile default`")
    return load_segmenter(None, "cpu")


def test_sidecar_records_config_and_metrics(shipped: object) -> None:
    doc = read_sidecar(DEFAULT_CHECKPOINT)
    assert doc["metrics"]["val_dice_mean"] > 0.9 and doc["config"]["size"] == 128
    assert doc["cohort_version"]


def test_segments_unseen_synthetic_bmode(shipped: object) -> None:
    cfg = DataConfig(size=128, shapes=((240, 320),))
    images, masks = _cohort_subject_pairs(VAL_SEED_OFFSET + 5000, cfg, 4)  # a subject no run trained on
    # Four unrelated frames, not a cine: segment each on its own (no temporal filter across them).
    out = np.stack([shipped.segment(im[None])[0] for im in images])  # type: ignore[attr-defined]
    assert out.shape == images.shape
    truth = masks.astype(bool)
    dice = 2 * (out.astype(bool) & truth).sum() / (out.sum() + truth.sum())
    assert dice > 0.85
