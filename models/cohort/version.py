"""Version of the synthetic cohort generator, recorded in every generated case.

Bump it whenever a change alters the arrays a given seed produces (shape model, motion,
simulator, corruption, B-mode or file layout), so that old and new cases are never mixed.
"""

from __future__ import annotations

from typing import Final

GENERATOR_VERSION: Final[str] = "cohort-2.3"
