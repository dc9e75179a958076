"""A segmenter handle that loads its model (and torch) only when a B-mode input needs it.

The worker and the CLI pass ``LazySegmenter(settings_path, device)`` to ``load_any``: studies made of
masks never import torch or read the checkpoint; the first B-mode input loads and verifies it
(``models.segment.runtime.load_segmenter``), later calls reuse it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray


class LazySegmenter:
    """:class:`~models.segment.protocol.Segmenter` that loads ``path`` (``None`` = shipped) on first use."""

    def __init__(self, path: str | Path | None, device: str) -> None:
        self.path = Path(path) if path is not None else None
        self.device = device
        self.name = "echo4d-segmenter (not loaded)" if path is None else f"{Path(path).name} (not loaded)"
        self._impl: Any = None

    def load(self) -> None:
        """Load and verify the model now (raises ModelError CHECKPOINT_INVALID when unusable)."""
        if self._impl is None:
            from models.segment.runtime import load_segmenter

            self._impl = load_segmenter(self.path, self.device)
            self.name = str(self._impl.name)

    def segment(self, frames: NDArray[np.uint8]) -> NDArray[np.uint8]:
        self.load()
        out: NDArray[np.uint8] = self._impl.segment(frames)
        return out

    def probabilities(self, frames: NDArray[np.uint8]) -> NDArray[np.float32]:
        self.load()
        out: NDArray[np.float32] = self._impl.probabilities(frames)
        return out
