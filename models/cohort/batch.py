"""Generate and write many cases (optionally in worker processes) plus the cohort index.

``out_dir/case_XXXXXX/`` per seed (``writer.write_case``) and ``out_dir/cohort.json``::

    {"format": "echo4d-cohort/1", "generator_version": "cohort-2.3", "split": "train",
     "seeds": [...], "config": {...}, "cases": [{"seed", "split", "phenotype", "edv_ml",
     "esv_ml", "ef_percent", "n_frames", "dir"}, ...]}

The index has no timestamp, so the same command writes the same bytes.
"""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from models.cohort.generate import CohortConfig, generate_case
from models.cohort.version import GENERATOR_VERSION
from models.cohort.writer import write_case

INDEX_NAME = "cohort.json"
COHORT_FORMAT = "echo4d-cohort/1"


def case_dir_name(seed: int) -> str:
    return f"case_{seed:06d}"


def make_case(seed: int, cfg: CohortConfig, out_dir: str) -> dict[str, Any]:
    """Generate and write case ``seed`` under ``out_dir``; returns its index entry."""
    case = generate_case(seed, cfg)
    name = case_dir_name(seed)
    write_case(case, Path(out_dir) / name)
    return {**case.summary(), "dir": name}


def _star(args: tuple[int, CohortConfig, str]) -> dict[str, Any]:
    return make_case(*args)


def iter_cohort(
    seeds: Sequence[int], cfg: CohortConfig, out_dir: str | Path, workers: int = 1
) -> Iterator[dict[str, Any]]:
    """Generate and write every seed; yields index entries in seed order as cases finish.
    ``workers > 1`` uses a process pool of that size."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(int(s), cfg, str(out)) for s in seeds]
    if workers <= 1:
        for job in jobs:
            yield _star(job)
        return
    with multiprocessing.get_context().Pool(processes=workers) as pool:
        yield from pool.imap(_star, jobs, chunksize=1)


def write_index(
    out_dir: str | Path, seeds: Sequence[int], cfg: CohortConfig, split: str, entries: Sequence[dict[str, Any]]
) -> Path:
    """Write ``cohort.json`` (entries sorted by seed)."""
    doc = {
        "format": COHORT_FORMAT,
        "generator_version": GENERATOR_VERSION,
        "split": split,
        "seeds": [int(s) for s in seeds],
        "config": cfg.to_dict(),
        "cases": sorted(entries, key=lambda e: int(e["seed"])),
    }
    path = Path(out_dir) / INDEX_NAME
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path
