"""Segmenters ingest can call: the shipped U-Net, or an external model named by path.

External model contract (for sites running their own nnU-Net or similar): a TorchScript file
(``torch.jit.trace``/``script``, any suffix) or a ``torch.export`` program (``.pt2``); input
(B, 1, H, W) float32 grey in [0, 1]; output either (B, 1, H, W) LV logits/probabilities, or
(B, C, H, W) class scores whose argmax equals the LV label. An optional sidecar
``<model>.json`` may say ``{"input_size": 256, "lv_label": 1}``: with ``input_size`` frames
are letterboxed to that square (else fed at native size).
ONNX files are refused: onnxruntime is not a dependency of this deployment (export to
TorchScript or torch.export instead).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from models.checkpoint_files import file_sha256
from models.errors import ErrorCode, ModelError
from models.segment.checkpoint import CHECKPOINT_FORMAT, DEFAULT_CHECKPOINT, load_checkpoint
from models.segment.letterbox import letterbox, normalise, unletterbox
from models.segment.network import UNet
from models.segment.protocol import Segmenter

BATCH = 16


def _to_probability(scores: torch.Tensor, lv_label: int) -> torch.Tensor:
    """(B, C, h, w) model output → (B, h, w) LV probability in [0, 1] (sigmoid of one logit
    channel, or the softmax share of the LV class)."""
    if scores.ndim == 3:
        scores = scores[:, None]
    if scores.shape[1] == 1:
        s = scores[:, 0]
        return s if float(s.min()) >= 0.0 and float(s.max()) <= 1.0 else torch.sigmoid(s)
    return torch.softmax(scores.float(), dim=1)[:, lv_label]


class _TorchSegmenter:
    """Shared driver: letterbox (optional), run ``module`` in batches, map back, threshold at 0.5."""

    def __init__(self, module: Any, name: str, device: torch.device | str, input_size: int | None,
                 lv_label: int = 1, normalise_input: bool = False) -> None:
        self.module = module
        self.normalise_input = normalise_input
        self.name = name
        self.device = torch.device(device)
        self.input_size = input_size
        self.lv_label = lv_label

    def segment(self, frames: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """(T, H, W) uint8 grey → (T, H, W) uint8 {0, 1} LV masks."""
        return (self.probabilities(frames) > 0.5).astype(np.uint8)

    @torch.no_grad()
    def probabilities(self, frames: NDArray[np.uint8]) -> NDArray[np.float32]:
        """(T, H, W) uint8 grey → (T, H, W) float32 LV probability in [0, 1]."""
        t, h, w = frames.shape
        out = np.zeros((t, h, w), dtype=np.float32)
        for start in range(0, t, BATCH):
            chunk = frames[start : start + BATCH]
            boxed = [letterbox(f, self.input_size) for f in chunk] if self.input_size is not None else []
            x = np.stack([b[0] for b in boxed]) if boxed else chunk
            scaled = normalise(x) if self.normalise_input else x.astype(np.float32) / 255.0
            tensor = torch.from_numpy(scaled)[:, None].to(self.device)
            prob = _to_probability(self.module(tensor), self.lv_label).float().cpu().numpy()
            for k in range(len(chunk)):
                out[start + k] = unletterbox(prob[k], boxed[k][1]) if boxed else prob[k]
        return out


class NetworkSegmenter(_TorchSegmenter):
    """The shipped U-Net (``models/checkpoints/segmenter.pt``) as a :class:`Segmenter`."""

    def __init__(self, model: UNet, name: str, device: torch.device | str = "cpu") -> None:
        super().__init__(model.to(device).eval(), name, device, model.config.size,
                         normalise_input=model.config.normalise)


class TorchScriptSegmenter(_TorchSegmenter):
    """An external TorchScript model (see the module docstring for its contract)."""


def load_segmenter(path: str | Path | None = None, device: torch.device | str = "cpu") -> Segmenter:
    """The segmenter at ``path`` (an echo4d checkpoint with its sidecar, or a TorchScript file);
    ``None`` → the shipped checkpoint. Raises :class:`ModelError` (CHECKPOINT_INVALID) when unusable."""
    p = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if p.suffix.lower() == ".onnx":
        raise ModelError(f"{p.name}: ONNX segmenters need onnxruntime, which this deployment does not ship; "
                         "export the model to TorchScript (torch.jit.trace) instead",
                         code=ErrorCode.CHECKPOINT_INVALID, field="segmenter")
    if not p.is_file():
        hint = " (train it with `echo4d train-segmenter`)" if path is None else ""
        raise ModelError(f"segmenter {p.name} not found{hint}", code=ErrorCode.CHECKPOINT_INVALID, field="segmenter")
    side = p.with_suffix(".json")
    meta: dict[str, Any] = {}
    if side.is_file():
        try:
            meta = json.loads(side.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelError(f"segmenter sidecar {side.name} is not valid JSON", code=ErrorCode.CHECKPOINT_INVALID,
                             field="segmenter") from None
    if isinstance(meta, dict) and meta.get("format") == CHECKPOINT_FORMAT:
        model, doc = load_checkpoint(p, device)
        return NetworkSegmenter(model, f"echo4d-segmenter sha256:{str(doc['sha256'])[:12]}", device)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still supported
            if p.suffix.lower() == ".pt2":
                module = torch.export.load(str(p)).module().to(torch.device(device))
            else:
                module = torch.jit.load(str(p), map_location=torch.device(device))  # type: ignore[no-untyped-call]
                module.eval()
    except Exception as exc:
        raise ModelError(f"segmenter {p.name} is neither an echo4d checkpoint, a TorchScript file nor a "
                         f"torch.export .pt2 program ({type(exc).__name__})", code=ErrorCode.CHECKPOINT_INVALID,
                         field="segmenter") from None
    size = meta.get("input_size") if isinstance(meta, dict) else None
    label = meta.get("lv_label", 1) if isinstance(meta, dict) else 1
    return TorchScriptSegmenter(module, f"torchscript sha256:{file_sha256(p)[:12]}", device,
                                int(size) if size else None, int(label))
