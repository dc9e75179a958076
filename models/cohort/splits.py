"""Seed splits: a frozen test split that no training may see, and disjoint training seeds.

Seeds name cases: case ``s`` is generated from seed ``s`` alone (``generate.generate_case``),
so a split is just a set of seeds. The test split is ``900_000 … 900_099``; training seeds come
from ``0 … 899_999`` (and ``1_000_000 …``), never from the test range. Reconstruction settings are
tuned on the tuning split ``600_000 … 600_099``, which no shipped model trains on (the prior's
subjects are ``0 …``, the segmenter's ``700_000 …``).
"""

from __future__ import annotations

from typing import Final

TEST_SPLIT_SEEDS: Final[range] = range(900_000, 900_100)
"""The frozen test split (100 subjects). Never train or tune on these."""

TUNING_SPLIT_SEEDS: Final[range] = range(600_000, 600_100)
"""The tuning split (100 subjects): choose reconstruction settings here, report on the test split."""

SPLITS: Final[dict[str, range]] = {"test": TEST_SPLIT_SEEDS, "tuning": TUNING_SPLIT_SEEDS}

TRAINING_SEED_LIMIT: Final[int] = 900_000
"""Training seeds are ``offset … offset + n − 1`` below this limit (disjoint from the test split)."""


def training_seeds(n: int, offset: int = 0) -> list[int]:
    """``n`` training seeds starting at ``offset``; raises if they would reach the test split."""
    if n < 0 or offset < 0:
        raise ValueError("n and offset must be non-negative")
    seeds = list(range(offset, offset + n))
    if seeds and seeds[-1] >= TRAINING_SEED_LIMIT:
        raise ValueError(f"training seeds must stay below {TRAINING_SEED_LIMIT} (the test split starts there)")
    assert not set(seeds) & set(TEST_SPLIT_SEEDS), "training seeds overlap the frozen test split"
    return seeds


def frozen_test_seeds(n: int = len(TEST_SPLIT_SEEDS), offset: int = 0) -> list[int]:
    """The first ``n`` seeds of the frozen test split after ``offset``."""
    return split_seeds("test", n, offset)


def split_seeds(split: str, n: int, offset: int = 0) -> list[int]:
    """The first ``n`` seeds of ``split`` (``test`` or ``tuning``) after ``offset``."""
    seeds = SPLITS.get(split)
    if seeds is None:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if n < 0 or offset < 0 or offset + n > len(seeds):
        raise ValueError(f"the {split} split has {len(seeds)} seeds; asked for {offset}+{n}")
    return list(seeds[offset : offset + n])
