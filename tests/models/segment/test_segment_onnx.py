"""Bring-your-own ONNX segmenters (the `echo4d[onnx]` extra) and the temporal filter of all segmenters."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from models.errors import ErrorCode, ModelError
from models.segment.runtime import load_segmenter
from models.segment.temporal import smooth_probabilities

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install 'echo4d[onnx]'")


class _TwoClass(torch.nn.Module):
    """A site's nnU-Net stand-in: background/LV scores, LV where the input is below ``cut``."""

    def __init__(self, cut: float) -> None:
        super().__init__()
        self.cut = cut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dark = (x < self.cut).float()
        return torch.cat([1 - dark, dark], dim=1) * 4.0


def _export(model: torch.nn.Module, path: Path, shape: tuple[int, int, int, int], dynamic: bool) -> Path:
    axes = {"image": {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.rand(*shape),), str(path), dynamo=False, input_names=["image"],
                          output_names=["scores"], dynamic_axes=axes)
    return path


def _frames() -> tuple[np.ndarray, np.ndarray]:
    frames = np.full((5, 48, 64), 200, np.uint8)
    frames[:, 10:30, 20:40] = 20
    return frames, (frames < 77).astype(np.uint8)


@pytest.mark.parametrize(("dynamic", "sidecar"), [
    (True, None),                                   # any size and batch: native size, unit grey
    (True, {"input_size": 64, "lv_label": 1}),      # letterboxed to 64
    (False, None),                                  # fixed (1, 1, 64, 64): letterboxed, one frame a call
])
def test_onnx_segmenter_runs_through_onnxruntime(tmp_path: Path, dynamic: bool, sidecar: dict[str, int] | None
                                                 ) -> None:
    path = _export(_TwoClass(0.3), tmp_path / "site.onnx", (1, 1, 64, 64), dynamic)
    if sidecar:
        path.with_suffix(".json").write_text(json.dumps(sidecar))
    frames, truth = _frames()
    seg = load_segmenter(path, "cpu")
    assert seg.name.startswith("onnx sha256:")
    out = seg.segment(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert 2 * (out & truth).sum() / (out.sum() + truth.sum()) > 0.95
    prob = seg.probabilities(frames)
    np.testing.assert_array_equal(out, (prob > 0.5).astype(np.uint8))


def test_onnx_zscore_input_norm(tmp_path: Path) -> None:
    """nnU-Net normalises each image to zero mean / unit std: the sidecar says so."""
    path = _export(_TwoClass(0.0), tmp_path / "nnunet.onnx", (1, 1, 48, 64), True)
    frames, truth = _frames()
    path.with_suffix(".json").write_text(json.dumps({"input_norm": "zscore"}))
    np.testing.assert_array_equal(load_segmenter(path, "cpu").segment(frames), truth)
    path.with_suffix(".json").write_text(json.dumps({"input_norm": "minmax"}))
    with pytest.raises(ModelError) as err:
        load_segmenter(path, "cpu")
    assert err.value.code == ErrorCode.CHECKPOINT_INVALID and "input_norm" in err.value.detail


def test_onnx_without_onnxruntime_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _export(_TwoClass(0.3), tmp_path / "site.onnx", (1, 1, 32, 32), True)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the extra were not installed
    with pytest.raises(ModelError) as err:
        load_segmenter(path, "cpu")
    assert "echo4d[onnx]" in err.value.detail


def test_temporal_filter_removes_a_one_frame_collapse() -> None:
    prob = np.zeros((9, 20, 20), np.float32)
    prob[:, 5:15, 5:15] = 0.95
    prob[4] = 0.0  # the network lost the cavity in one frame
    out = smooth_probabilities(prob)
    areas = (out > 0.5).sum(axis=(1, 2))
    assert (areas == 100).all()
    assert smooth_probabilities(prob[:2]).shape == (2, 20, 20)  # too short to filter: unchanged
    np.testing.assert_array_equal(smooth_probabilities(prob[:2]), prob[:2])


def test_sidecar_can_turn_the_temporal_filter_off(tmp_path: Path) -> None:
    path = _export(_TwoClass(0.3), tmp_path / "site.onnx", (1, 1, 48, 64), True)
    frames, _ = _frames()
    frames[2] = 200  # no cavity in frame 2
    assert load_segmenter(path, "cpu").segment(frames)[2].sum() > 0  # filled in from its neighbours
    path.with_suffix(".json").write_text(json.dumps({"temporal_smoothing": False}))
    assert load_segmenter(path, "cpu").segment(frames)[2].sum() == 0
