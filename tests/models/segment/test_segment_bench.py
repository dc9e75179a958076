"""`echo4d bench segment`: the synthetic ED/ES × view split, Dice by group and the real-cine proxies."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import app
from models.segment.bench import area_proxies, bench_split, dice, dice_by_group
from models.segment.checkpoint import save_checkpoint
from models.segment.data import DataConfig
from models.segment.network import SegmenterConfig, UNet


class _Truth:
    """A segmenter that returns stored masks (checks the grouping, not a network)."""

    def __init__(self, masks: dict[bytes, np.ndarray]) -> None:
        self.masks = masks

    def segment(self, frames: np.ndarray) -> np.ndarray:
        return np.stack([self.masks[f.tobytes()] for f in frames])

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        return self.segment(frames).astype(np.float32)


@pytest.mark.parametrize("simulator", ["physics", "classic"])
def test_split_has_ed_and_es_in_every_view(simulator: str) -> None:
    cfg = DataConfig(size=64, shapes=((120, 140),), simulator=simulator)  # type: ignore[arg-type]
    samples = bench_split(1, cfg)
    assert sorted((s[2], s[3]) for s in samples) == sorted((v, p) for v in ("A2C", "A3C", "A4C") for p in ("ED", "ES"))
    assert all(s[0].shape == (64, 64) and s[1].any() for s in samples)
    perfect = dice_by_group(_Truth({s[0].tobytes(): s[1] for s in samples}), samples)
    assert perfect["all"]["mean"] == 1.0 and perfect["ES/A2C"]["n"] == 1 and perfect["ED"]["n"] == 3
    empty = dice_by_group(_Truth({s[0].tobytes(): np.zeros_like(s[1]) for s in samples}), samples)
    assert empty["all"]["mean"] == 0.0


def test_dice_and_area_proxies() -> None:
    a = np.zeros((10, 10), np.uint8)
    a[2:6, 2:6] = 1
    assert dice(a, a) == 1.0 and dice(np.zeros_like(a), np.zeros_like(a)) == 1.0 and dice(a, 1 - a) == 0.0
    p = area_proxies({"fractional_area_change": 0.4}, [30.0, 10.0, 24.0, 25.0], [80.0, 50.0, 78.0, 79.0])
    assert p["area_max_jump_cm2"] == 20.0 and p["area_jitter"] == pytest.approx(14.0 / 24.5, abs=1e-3)


@pytest.mark.slow
def test_bench_segment_cli(tmp_path: Path) -> None:
    ckpt = save_checkpoint(UNet(SegmenterConfig(size=32, base_channels=4, depth=2)), tmp_path / "tiny.pt",
                           train_config={}, metrics={}, curves={}, cohort_version="test")
    out = tmp_path / "bench.json"
    res = CliRunner().invoke(app, ["bench", "segment", "--segmenter", str(ckpt), "--n", "1", "--simulator", "classic",
                                   "--real-echo", str(tmp_path / "absent"), "--json", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    (name, per_sim), = doc["dice"].items()
    assert set(per_sim) == {"classic"} and per_sim["classic"]["all"]["n"] == 6
    assert "skipped a4c_sequence" in res.output
    clips = doc["real"][name]  # pydicom's ybr_color cine, per frame and with the temporal filter
    assert set(clips) == {"pydicom_ybr_color (per frame)", "pydicom_ybr_color (temporal filter)"}
    bad = CliRunner().invoke(app, ["bench", "segment", "--simulator", "cartoon", "--n", "1"])
    assert bad.exit_code != 0
