"""What ingest needs from a segmenter (torch-free, so ingest imports without torch)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray


@runtime_checkable
class Segmenter(Protocol):
    """Turns grey B-mode frames into LV cavity masks.

    ``segment(frames)``: frames (T, H, W) uint8 (0 outside the imaging sector) → masks
    (T, H, W) uint8 in {0, 1}, same size. ``probabilities(frames)``: the same frames → (T, H, W)
    float32 LV probability in [0, 1] (``segment`` is ``probabilities > 0.5``); the quality gate reads
    its confidence from these. ``name`` identifies the model in reports
    (e.g. ``echo4d-segmenter sha256:1a2b…`` or ``torchscript:model.pt``).
    """

    name: str

    def segment(self, frames: NDArray[np.uint8]) -> NDArray[np.uint8]: ...

    def probabilities(self, frames: NDArray[np.uint8]) -> NDArray[np.float32]: ...
