"""B-mode LV segmentation: a compact U-Net trained on synthetic B-mode, and external TorchScript models.

This package module stays torch-free (ingest imports :mod:`models.segment.protocol`); import
``models.segment.network``, ``.train``, ``.checkpoint`` or ``.runtime`` for the torch parts.
"""

from __future__ import annotations

from models.segment.protocol import Segmenter

__all__ = ["Segmenter"]
