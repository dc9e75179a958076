"""Synthetic 4D LV cohort: shape model, motion, echo view simulator, corruption, B-mode, cases.

Import the sub-modules directly (``models.cohort.generate``, ``models.cohort.simulator`` ...);
this package module stays light (numpy only, no torch).
"""

from __future__ import annotations

from models.cohort.version import GENERATOR_VERSION

__all__ = ["GENERATOR_VERSION"]
