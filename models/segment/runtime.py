"""Segmenters ingest can call: the shipped U-Net, or an external model named by path.

External model contract (for sites running their own nnU-Net or similar): a TorchScript file
(``torch.jit.trace``/``script``, any suffix), a ``torch.export`` program (``.pt2``) or an ONNX
model (``.onnx``, run by onnxruntime: ``pip install 'echo4d[onnx]'``); input (B, 1, H, W)
float32 grey; output either (B, 1, H, W) LV logits/probabilities, or (B, C, H, W) class scores
whose argmax equals the LV label. An optional sidecar ``<model>.json`` may say
``{"input_size": 256, "lv_label": 1, "input_norm": "zscore", "temporal_smoothing": true}``:
with ``input_size`` frames are letterboxed to that square (else fed at native size, or at the
ONNX model's fixed square input size); ``input_norm`` is ``unit`` (grey / 255, the default),
``percentile`` (each frame / its non-zero 99th percentile, as the shipped U-Net) or ``zscore``
(each frame minus its mean, over its std: nnU-Net's normalisation of non-CT images).
Per-frame probabilities are filtered along time (``models.segment.temporal``) unless the
sidecar says ``"temporal_smoothing": false``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from numpy.typing import NDArray

from models.checkpoint_files import file_sha256
from models.errors import ErrorCode, ModelError
from models.segment.checkpoint import CHECKPOINT_FORMAT, DEFAULT_CHECKPOINT, load_checkpoint
from models.segment.letterbox import letterbox, normalise, unletterbox
from models.segment.network import UNet
from models.segment.protocol import Segmenter
from models.segment.temporal import smooth_probabilities

BATCH = 16
INPUT_NORMS: Final = ("unit", "percentile", "zscore")


def _to_probability(scores: torch.Tensor, lv_label: int) -> torch.Tensor:
    """(B, C, h, w) model output → (B, h, w) LV probability in [0, 1] (sigmoid of one logit
    channel, or the softmax share of the LV class)."""
    if scores.ndim == 3:
        scores = scores[:, None]
    if scores.shape[1] == 1:
        s = scores[:, 0]
        return s if float(s.min()) >= 0.0 and float(s.max()) <= 1.0 else torch.sigmoid(s)
    return torch.softmax(scores.float(), dim=1)[:, lv_label]


def scale_frames(frames: NDArray[np.uint8], input_norm: str) -> NDArray[np.float32]:
    """(N, H, W) uint8 → (N, H, W) float32 network input under ``input_norm`` (see module doc)."""
    if input_norm == "percentile":
        return normalise(frames)
    x = frames.astype(np.float32)
    if input_norm == "zscore":
        mean = x.mean(axis=(1, 2), keepdims=True)
        std = x.std(axis=(1, 2), keepdims=True)
        out: NDArray[np.float32] = (x - mean) / np.maximum(std, 1e-6)
        return out
    return x / 255.0


class _TorchSegmenter:
    """Shared driver: letterbox (optional), run ``module`` in batches, map back, filter along time,
    threshold at 0.5."""

    def __init__(self, module: Any, name: str, device: torch.device | str, input_size: int | None,
                 lv_label: int = 1, input_norm: str = "unit", temporal: bool = True) -> None:
        self.module = module
        self.name = name
        self.device = torch.device(device)
        self.input_size = input_size
        self.lv_label = lv_label
        self.input_norm = input_norm
        self.temporal = temporal

    def segment(self, frames: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """(T, H, W) uint8 grey → (T, H, W) uint8 {0, 1} LV masks (= probabilities > 0.5)."""
        return (self.probabilities(frames) > 0.5).astype(np.uint8)

    def probabilities(self, frames: NDArray[np.uint8]) -> NDArray[np.float32]:
        """(T, H, W) uint8 grey → (T, H, W) float32 LV probability in [0, 1], filtered along time
        (``models.segment.temporal``) unless ``temporal`` is off."""
        prob = self.frame_probabilities(frames)
        return smooth_probabilities(prob) if self.temporal else prob

    @torch.no_grad()
    def frame_probabilities(self, frames: NDArray[np.uint8]) -> NDArray[np.float32]:
        """(T, H, W) uint8 grey → (T, H, W) float32 LV probability of each frame on its own."""
        t, h, w = frames.shape
        out = np.zeros((t, h, w), dtype=np.float32)
        for start in range(0, t, BATCH):
            chunk = frames[start : start + BATCH]
            boxed = [letterbox(f, self.input_size) for f in chunk] if self.input_size is not None else []
            x = np.stack([b[0] for b in boxed]) if boxed else chunk
            tensor = torch.from_numpy(scale_frames(x, self.input_norm))[:, None].to(self.device)
            prob = _to_probability(self.module(tensor), self.lv_label).float().cpu().numpy()
            for k in range(len(chunk)):
                out[start + k] = unletterbox(prob[k], boxed[k][1]) if boxed else prob[k]
        return out


class NetworkSegmenter(_TorchSegmenter):
    """The shipped U-Net (``models/checkpoints/segmenter.pt``) as a :class:`Segmenter`."""

    def __init__(self, model: UNet, name: str, device: torch.device | str, temporal: bool = True) -> None:
        super().__init__(model.to(device).eval(), name, device, model.config.size,
                         input_norm="percentile" if model.config.normalise else "unit", temporal=temporal)


class TorchScriptSegmenter(_TorchSegmenter):
    """An external TorchScript / torch.export / ONNX model (see the module docstring for its contract)."""


class OnnxModule:
    """An ONNX model run by onnxruntime (CPU), called like a torch module: (B, 1, H, W) → scores.
    A model exported with a fixed batch of 1 is run one frame at a time."""

    def __init__(self, path: Path) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ModelError(f"{path.name}: ONNX segmenters need onnxruntime: pip install 'echo4d[onnx]'",
                             code=ErrorCode.CHECKPOINT_INVALID, field="segmenter") from None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(f"segmenter {path.name} is not a loadable ONNX model ({type(exc).__name__})",
                             code=ErrorCode.CHECKPOINT_INVALID, field="segmenter") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(f"segmenter {path.name}: expected one (B, 1, H, W) input, got "
                             f"{[i.shape for i in inputs]}", code=ErrorCode.CHECKPOINT_INVALID, field="segmenter")
        self.input_name = inputs[0].name
        shape = inputs[0].shape
        self.fixed_batch = shape[0] == 1
        self.square = int(shape[2]) if isinstance(shape[2], int) and shape[2] == shape[3] else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().numpy().astype(np.float32)
        parts = [arr[k : k + 1] for k in range(len(arr))] if self.fixed_batch else [arr]
        outs = [np.asarray(self.session.run(None, {self.input_name: p})[0]) for p in parts]
        return torch.from_numpy(np.concatenate(outs).astype(np.float32))


def _invalid(detail: str) -> ModelError:
    return ModelError(detail, code=ErrorCode.CHECKPOINT_INVALID, field="segmenter")


def _read_meta(side: Path) -> dict[str, Any]:
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _invalid(f"segmenter sidecar {side.name} is not valid JSON") from None
    return meta if isinstance(meta, dict) else {}


def _external(p: Path, meta: dict[str, Any], device: torch.device | str) -> Segmenter:
    norm = str(meta.get("input_norm", "unit"))
    if norm not in INPUT_NORMS:
        raise _invalid(f"segmenter sidecar: input_norm {norm!r} is not one of {', '.join(INPUT_NORMS)}")
    size = meta.get("input_size")
    module: Any
    if p.suffix.lower() == ".onnx":
        module = OnnxModule(p)
        size = size or module.square
        kind = "onnx"
    else:
        kind = "torchscript"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still supported
                if p.suffix.lower() == ".pt2":
                    module = torch.export.load(str(p)).module().to(torch.device(device))
                else:
                    module = torch.jit.load(str(p), map_location=torch.device(device))  # type: ignore[no-untyped-call]
                    module.eval()
        except Exception as exc:
            raise _invalid(f"segmenter {p.name} is neither an echo4d checkpoint, a TorchScript file nor a "
                           f"torch.export .pt2 program ({type(exc).__name__})") from None
    return TorchScriptSegmenter(module, f"{kind} sha256:{file_sha256(p)[:12]}", device, int(size) if size else None,
                                int(meta.get("lv_label", 1)), norm, bool(meta.get("temporal_smoothing", True)))


def load_segmenter(path: str | Path | None, device: torch.device | str) -> Segmenter:
    """The segmenter at ``path`` (an echo4d checkpoint with its sidecar, a TorchScript / .pt2 file or
    an ONNX model); ``None`` → the shipped checkpoint. Raises :class:`ModelError` (CHECKPOINT_INVALID)
    when unusable."""
    p = Path(path) if path is not None else DEFAULT_CHECKPOINT
    if not p.is_file():
        hint = " (train it with `echo4d train-segmenter`)" if path is None else ""
        raise _invalid(f"segmenter {p.name} not found{hint}")
    meta = _read_meta(p.with_suffix(".json"))
    if meta.get("format") == CHECKPOINT_FORMAT:
        model, doc = load_checkpoint(p, device)
        return NetworkSegmenter(model, f"echo4d-segmenter sha256:{str(doc['sha256'])[:12]}", device)
    return _external(p, meta, device)
