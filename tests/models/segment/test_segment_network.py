"""The segmenter network, letterboxing and the checkpoint / external-model loaders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint_files import file_sha256
from models.errors import ErrorCode, ModelError
from models.segment.checkpoint import load_checkpoint, save_checkpoint
from models.segment.letterbox import Box, letterbox, unletterbox
from models.segment.network import SegmenterConfig, UNet
from models.segment.protocol import Segmenter
from models.segment.runtime import load_segmenter

SMALL = SegmenterConfig(size=32, base_channels=4, depth=2)


@pytest.mark.parametrize("cfg", [SMALL, SegmenterConfig(size=64, base_channels=8, depth=3)])
def test_unet_keeps_the_input_size(cfg: SegmenterConfig) -> None:
    out = UNet(cfg)(torch.rand(2, 1, cfg.size, cfg.size))
    assert out.shape == (2, 1, cfg.size, cfg.size)


def test_config_rejects_sizes_the_pooling_cannot_halve() -> None:
    with pytest.raises(ValueError):
        SegmenterConfig(size=100, depth=3)


@pytest.mark.parametrize("shape", [(240, 320), (416, 513), (300, 200), (64, 64)])
def test_letterbox_round_trip_keeps_geometry(shape: tuple[int, int]) -> None:
    h, w = shape
    mask = np.zeros(shape, np.uint8)
    mask[h // 4 : h // 2, w // 3 : w // 2] = 1  # a box away from the edges
    boxed, box = letterbox(mask * 255, 128)
    assert boxed.shape == (128, 128) and box == Box.fit(shape, 128)
    assert boxed[0].any() or boxed[: box.height].any()  # placed against the top edge
    back = unletterbox(boxed.astype(np.float32) / 255.0, box) > 0.5
    assert back.shape == shape
    inter = (back & (mask == 1)).sum()
    assert 2 * inter / (back.sum() + mask.sum()) > 0.9


def _checkpoint(tmp: Path) -> Path:
    return save_checkpoint(UNet(SMALL), tmp / "seg.pt", train_config={"profile": "test"},
                           metrics={"val_dice_mean": 0.5}, curves={"loss": list(np.linspace(1, 0, 500))},
                           cohort_version="test")


def test_checkpoint_round_trip_and_sidecar(tmp_path: Path) -> None:
    pt = _checkpoint(tmp_path)
    doc = json.loads(pt.with_suffix(".json").read_text())
    assert doc["sha256"] == file_sha256(pt) and doc["config"] == SMALL.to_dict()
    assert len(doc["curves"]["loss"]) == 100  # thinned
    model, side = load_checkpoint(pt, "cpu")
    assert not model.training and side["metrics"]["val_dice_mean"] == 0.5


def test_tampered_checkpoint_is_refused(tmp_path: Path) -> None:
    pt = _checkpoint(tmp_path)
    data = bytearray(pt.read_bytes())
    data[-10] ^= 0xFF
    pt.write_bytes(bytes(data))
    with pytest.raises(ModelError) as err:
        load_checkpoint(pt, "cpu")
    assert err.value.code == ErrorCode.CHECKPOINT_INVALID and "sha256" in err.value.detail


def test_load_segmenter_wraps_a_checkpoint(tmp_path: Path) -> None:
    seg = load_segmenter(_checkpoint(tmp_path), "cpu")
    assert isinstance(seg, Segmenter) and seg.name.startswith("echo4d-segmenter sha256:")
    out = seg.segment(np.random.default_rng(0).integers(0, 255, (3, 40, 56), dtype=np.uint8))
    assert out.shape == (3, 40, 56) and out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1}


class _DarkIsLV(torch.nn.Module):
    """A stand-in for a site's nnU-Net: two-class scores, class 1 where the image is dark."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dark = (x < 0.3).float()
        return torch.cat([1 - dark, dark], dim=1)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("input_size", [None, 64])
def test_external_torchscript_segmenter(tmp_path: Path, input_size: int | None) -> None:
    path = tmp_path / "site_model.ts"
    torch.jit.script(_DarkIsLV()).save(str(path))
    if input_size:
        path.with_suffix(".json").write_text(json.dumps({"input_size": input_size, "lv_label": 1}))
    frames = np.full((2, 48, 64), 200, np.uint8)
    frames[:, 10:30, 20:40] = 20
    seg = load_segmenter(path, "cpu")
    assert seg.name.startswith("torchscript sha256:")
    out = seg.segment(frames)
    truth = (frames < 77).astype(np.uint8)
    assert 2 * (out & truth).sum() / (out.sum() + truth.sum()) > 0.95


@pytest.mark.parametrize(("name", "content"), [("model.onnx", b"\x08\x07"), ("junk.pt", b"not a model"),
                                               ("missing.pt", None)])
def test_unusable_segmenters_are_model_errors(tmp_path: Path, name: str, content: bytes | None) -> None:
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelError) as err:
        load_segmenter(tmp_path / name, "cpu")
    assert err.value.code == ErrorCode.CHECKPOINT_INVALID


@pytest.mark.slow
def test_external_torch_export_program(tmp_path: Path) -> None:
    program = torch.export.export(_DarkIsLV(), (torch.rand(2, 1, 48, 64),),
                                  dynamic_shapes=({0: torch.export.Dim.AUTO},))
    torch.export.save(program, str(tmp_path / "site_model.pt2"))
    frames = np.full((2, 48, 64), 200, np.uint8)
    frames[:, 10:30, 20:40] = 20
    out = load_segmenter(tmp_path / "site_model.pt2", "cpu").segment(frames)
    np.testing.assert_array_equal(out, (frames < 77).astype(np.uint8))


def test_lazy_segmenter_loads_on_first_use(tmp_path: Path) -> None:
    from models.segment.lazy import LazySegmenter

    lazy = LazySegmenter(_checkpoint(tmp_path), "cpu")
    assert "not loaded" in lazy.name
    out = lazy.segment(np.zeros((2, 40, 40), np.uint8))
    assert out.shape == (2, 40, 40) and lazy.name.startswith("echo4d-segmenter sha256:")
    with pytest.raises(ModelError):
        LazySegmenter(tmp_path / "absent.pt", "cpu").load()
