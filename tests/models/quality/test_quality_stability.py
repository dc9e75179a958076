"""Segmentation stability: acquisition variants and the FAC spread they cause, on frames whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from models.quality.stability import ACQUISITION_VARIANTS, fac_spread, mask_fac


class ThresholdSegmenter:
    """A grey-level segmenter (dark = cavity): its border is decided by the grey level, which is what the
    signal is built to catch."""

    name = "threshold:80"

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        return ((frames > 0) & (frames < 80)).astype(np.float32)

    def segment(self, frames: np.ndarray) -> np.ndarray:
        return (self.probabilities(frames) > 0.5).astype(np.uint8)


def disk_clip(radii: np.ndarray, ramp_px: float) -> np.ndarray:
    """(T, 64, 64) uint8: a dark disk (grey 20) of radius r_t in bright tissue (grey 200), the border a
    linear ramp ``ramp_px`` wide (0: a sharp edge, which no gain change moves)."""
    rr, cc = np.mgrid[:64, :64]
    d = np.hypot(rr - 32, cc - 32)
    frames = []
    for r in radii:
        t = np.clip((d - r) / ramp_px, 0.0, 1.0) if ramp_px > 0 else (d > r).astype(float)
        frames.append(np.round(20 + 180 * t))
    return np.stack(frames).astype(np.uint8)


RADII = 14.0 - 4.0 * (1 - np.cos(2 * np.pi * np.arange(12) / 12)) / 2


@pytest.mark.parametrize("name", sorted(ACQUISITION_VARIANTS))
def test_variants_keep_shape_dtype_and_the_blank_outside_the_sector(name: str):
    frames = (np.random.default_rng(0).random((3, 20, 30)) * 255).astype(np.uint8)
    frames[:, :4] = 0
    out = ACQUISITION_VARIANTS[name](frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert (out[:, :4] == 0).all()
    assert not np.array_equal(out, frames)


def test_gain_variants_move_grey_levels_the_right_way():
    frames = np.full((1, 4, 4), 128, np.uint8)
    assert ACQUISITION_VARIANTS["gain_down"](frames)[0, 0, 0] < 128 < ACQUISITION_VARIANTS["gain_up"](frames)[0, 0, 0]


def test_a_sharp_border_is_stable_and_a_graded_one_is_not():
    seg = ThresholdSegmenter()
    sharp, graded = disk_clip(RADII, 0.0), disk_clip(RADII, 8.0)
    assert fac_spread(seg, sharp, seg.segment(sharp)) == pytest.approx(0.0, abs=0.02)
    # graded border: a gain change moves the threshold crossing by a few pixels at every radius, and the
    # relative change is larger at the small end-systolic disk, so the FAC moves
    assert fac_spread(seg, graded, seg.segment(graded)) > 0.05


def test_mask_fac_and_a_single_frame():
    masks = np.zeros((2, 10, 10), np.uint8)
    masks[0, :4] = 1
    masks[1, :2] = 1
    assert mask_fac(masks) == pytest.approx(0.5)
    assert fac_spread(ThresholdSegmenter(), disk_clip(RADII[:1], 8.0), masks[:1]) == 0.0
