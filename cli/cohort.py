"""`echo4d cohort`: generate a deterministic synthetic 4D LV cohort with exact ground truth."""

from __future__ import annotations

import sys
import time
from enum import StrEnum
from pathlib import Path

import typer

from cli.common import user_errors


class Split(StrEnum):
    train = "train"
    test = "test"


def cohort(
    n: int = typer.Option(..., "--n", min=1, help="Number of cases."),
    seed: int = typer.Option(0, "--seed", min=0, help="First seed (train: seed..seed+n-1; test: offset in the split)."),
    out: Path = typer.Option(..., "--out", help="Output directory (case_XXXXXX/ folders and cohort.json)."),
    frames: int = typer.Option(20, "--frames", min=2, max=512, help="Frames per cycle."),
    split: Split = typer.Option(Split.train, "--split", help="train seeds, or the frozen 100-subject test split."),
    sdf: bool = typer.Option(True, "--sdf/--no-sdf", help="Write exact SDF samples per frame (sdf.npz)."),
    bmode: bool = typer.Option(False, "--bmode/--no-bmode", help="Write B-mode cines per view (bmode/V.npy)."),
    severity: float = typer.Option(0.5, "--severity", min=0.0, max=1.0, help="Mask corruption severity."),
    perturbation: float = typer.Option(1.0, "--perturbation", min=0.0, max=1.0, help="Probe perturbation strength."),
    workers: int = typer.Option(1, "--workers", min=1, max=64, help="Worker processes."),
) -> None:
    """Generate N synthetic cases (study bundle, noisy bundle, ground truth, preview) from seeds."""
    with user_errors():
        from tqdm import tqdm

        from models.cohort.batch import iter_cohort, write_index
        from models.cohort.generate import CohortConfig
        from models.cohort.splits import frozen_test_seeds, training_seeds
        from models.errors import ErrorCode, InputError

        try:
            seeds = frozen_test_seeds(n, offset=seed) if split is Split.test else training_seeds(n, offset=seed)
        except ValueError as exc:
            raise InputError(str(exc), code=ErrorCode.VALIDATION_FAILED, field="--seed") from None
        cfg = CohortConfig(
            n_frames=frames, sdf=sdf, bmode=bmode, corruption_severity=severity, perturbation_strength=perturbation
        )
        start = time.perf_counter()
        entries = list(
            tqdm(iter_cohort(seeds, cfg, out, workers), total=len(seeds), desc="cohort", unit="case", file=sys.stderr)
        )
        index = write_index(out, seeds, cfg, split.value, entries)
        minutes = (time.perf_counter() - start) / 60.0
        typer.echo(
            f"wrote {len(entries)} cases to {out} ({len(entries) / max(minutes, 1e-9):.1f} cases/min); index {index}"
        )


def sample_study() -> None:
    """Rewrite the web viewer's built-in sample study (service/viewer/static/sample-study.zip) from the cohort
    (after a change of the generator; the viewer tests check the committed file is what this writes)."""
    with user_errors():
        from service.viewer.sample import SAMPLE_PATH, sample_study_zip

        SAMPLE_PATH.write_bytes(sample_study_zip())
        typer.echo(f"wrote {SAMPLE_PATH} ({SAMPLE_PATH.stat().st_size} bytes)")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("cohort", help="Generate a deterministic synthetic 4D LV cohort with exact ground truth.")(cohort)
    app.command("sample-study", help="Rewrite the web viewer's built-in sample study from the cohort.")(sample_study)
