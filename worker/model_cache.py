"""Model weights loaded once per worker process (lazily, on the first job, inside that process).

Nothing here touches torch until a job needs it, so a prefork parent never initialises CUDA
(children would inherit a broken context); each process owns its own :class:`ModelCache`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


class ModelCache:
    def __init__(self, device: str = "auto", checkpoint: Path | None = None, segmenter: Path | None = None,
                 threads: int = 0) -> None:
        self._device_name = device
        self._threads = threads
        self._checkpoint = checkpoint
        self._segmenter_path = segmenter
        self._device: Any = None
        self._prior: Any = None
        self._segmenter: Any = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.loads = 0  # how many times weights were read from disk in this process

    def _check_process(self) -> None:
        if os.getpid() != self._pid:  # forked after loading: start over in the child
            self._device = self._prior = self._segmenter = None
            self._pid = os.getpid()

    def device(self) -> Any:
        """The torch device for ``device`` (:func:`models.device.resolve_device`: auto, cpu, cuda, cuda:N); on
        first use in a process it also sets torch's CPU threads to ``threads`` (0: torch's default)."""
        with self._lock:
            self._check_process()
            if self._device is None:
                import torch

                from models.device import resolve_device

                if self._threads > 0:
                    torch.set_num_threads(self._threads)
                self._device = resolve_device(self._device_name)
            return self._device

    def prior(self) -> Any:
        """The shape prior (``checkpoint``, else the shipped default) on :meth:`device`, loaded on first use."""
        device = self.device()
        with self._lock:
            self._check_process()
            if self._prior is None:
                from models.prior.checkpoint import load_default_prior, load_prior

                if self._checkpoint is not None:
                    self._prior = load_prior(self._checkpoint, device)
                else:
                    self._prior = load_default_prior(device)
                self.loads += 1
                log.info("prior_loaded", device=str(device))
            return self._prior

    def segmenter(self) -> Any:
        """The B-mode segmenter (``segmenter`` path, else the shipped checkpoint) on :meth:`device`, as a
        :class:`~models.segment.lazy.LazySegmenter`: one per process, its weights read once, on the first
        B-mode view (studies made of masks never load it)."""
        device = self.device()
        with self._lock:
            self._check_process()
            if self._segmenter is None:
                from models.segment.lazy import LazySegmenter

                self._segmenter = LazySegmenter(self._segmenter_path, str(device))
            return self._segmenter
