"""Mask corruption and B-mode synthesis: deterministic, plausible, never empty."""

from __future__ import annotations

import numpy as np
import pytest

from models.cohort.bmode import synthesize_bmode
from models.cohort.corruption import CorruptionConfig, corrupt_masks, dice
from models.cohort.simulator import sample_perturbation, simulate_sequence
from models.cohort.subject import generate_subject
from models.geometry.frames import VIEW_NAMES
from models.geometry.sector import sector_mask


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    out = []
    for seed in (1, 2, 3):
        s = generate_subject(seed)
        cyc = s.cycle(10)
        rng = np.random.default_rng(seed)
        for view in VIEW_NAMES:
            out.append(simulate_sequence(cyc.vertices, cyc.faces, view, sample_perturbation(rng, 0.5, 90.0))[0])
    return out


def test_default_corruption_changes_masks_but_keeps_overlap(clips: list[np.ndarray]) -> None:
    rng = np.random.default_rng(0)
    changed = 0
    for clip in clips:
        noisy = corrupt_masks(clip, rng)
        assert noisy.shape == clip.shape and noisy.dtype == np.uint8
        assert set(np.unique(noisy)) <= {0, 1}
        assert noisy.reshape(len(noisy), -1).sum(axis=1).min() > 0  # never empty
        changed += int((noisy != clip).any())
        assert min(dice(a, b) for a, b in zip(clip, noisy, strict=True)) > 0.8
    assert changed == len(clips)


def test_severity_scales_the_damage(clips: list[np.ndarray]) -> None:
    def mean_dice(sev: float) -> float:
        rng = np.random.default_rng(5)
        return float(
            np.mean([dice(c, n) for clip in clips for c, n in zip(clip, corrupt_masks(clip, rng, sev), strict=True)])
        )

    assert mean_dice(0.0) == 1.0
    assert mean_dice(1.0) < mean_dice(0.3) < 1.0


def test_corruption_is_deterministic(clips: list[np.ndarray]) -> None:
    a = corrupt_masks(clips[0], np.random.default_rng(42), 0.7)
    b = corrupt_masks(clips[0], np.random.default_rng(42), 0.7)
    np.testing.assert_array_equal(a, b)


def test_apical_truncation_cuts_the_near_field(clips: list[np.ndarray]) -> None:
    cfg = CorruptionConfig(
        apical_dropout_prob=1.0, lateral_dropout_prob=0.0, jitter_px=0.0, holes_per_frame=0.0, flicker_prob=0.0
    )
    clip = clips[0]
    noisy = corrupt_masks(clip, np.random.default_rng(0), 1.0, cfg)
    top_clean = np.nonzero(clip.any(axis=(0, 2)))[0].min()
    top_noisy = np.nonzero(noisy.any(axis=(0, 2)))[0].min()
    assert top_noisy > top_clean + 3


def test_bmode_contrast_fan_and_determinism(clips: list[np.ndarray]) -> None:
    mask = clips[0][0]
    img = synthesize_bmode(mask, np.random.default_rng(3))
    assert img.shape == mask.shape and img.dtype == np.uint8
    fan = sector_mask(mask.shape, (0.7, 0.7))
    assert not img[fan == 0].any()
    blood = img[mask == 1].mean()
    from scipy import ndimage

    ring = ndimage.binary_dilation(mask.astype(bool), iterations=8) & ~ndimage.binary_dilation(
        mask.astype(bool), iterations=2
    )
    assert img[ring & (fan == 1)].mean() > blood + 60  # bright myocardium around a dark pool
    np.testing.assert_array_equal(img, synthesize_bmode(mask, np.random.default_rng(3)))
    assert not np.array_equal(img, synthesize_bmode(mask, np.random.default_rng(4)))
