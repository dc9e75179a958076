"""``echo4d bench accuracy | speed | real-lv``: reconstruction benchmarks (figures for docs/results.md).

Imported by ``cli`` for its side effect of adding the commands to ``bench_app``.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import typer

from cli.bench import bench_app
from cli.common import user_errors
from cli.reconstruct import DEMO_SEED, load_prior_for, parse_views

DEFAULT_OUT = Path("out/bench")
REAL_LV = Path("../shared/data/real-lv-4d/biv-me-patient1/bivme_patient1_lv_endo.npz")


def _prior(prior_path: Path | None, ablation: str, device: Any) -> Any:
    from models.errors import ErrorCode, InputError

    prior = load_prior_for(prior_path, device)
    if ablation == "no-eca" and getattr(getattr(prior, "config", None), "use_eca", False):
        raise InputError("--ablation no-eca needs --prior pointing at a prior trained with use_eca = false",
                         code=ErrorCode.VALIDATION_FAILED, field="prior")
    return prior


SET_OPTION = typer.Option([], "--set", help="Reconstruction setting override, e.g. anchor.lr_decoder=0 "
                          "(repeatable; names as in ReconConfig).")


def parse_settings(items: list[str]) -> tuple[tuple[str, str], ...]:
    """``["anchor.lr_decoder=0", ...]`` → ``(("anchor.lr_decoder", "0"), ...)``."""
    from models.errors import ErrorCode, InputError

    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--set expects NAME=VALUE, got {item!r}", code=ErrorCode.VALIDATION_FAILED,
                             field="set")
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def _split_seeds(split: str, n: int, offset: int, only: str | None) -> list[int]:
    from models.cohort.splits import SPLITS, split_seeds
    from models.errors import ErrorCode, InputError

    if split not in SPLITS:
        raise InputError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}",
                         code=ErrorCode.VALIDATION_FAILED, field="split")
    if only is None:
        try:
            return split_seeds(split, n, offset)
        except ValueError as exc:
            raise InputError(str(exc), code=ErrorCode.VALIDATION_FAILED, field="n") from exc
    try:
        seeds = [int(s) for s in only.split(",") if s.strip()]
    except ValueError as exc:
        raise InputError(f"--cases expects comma-separated integers, got {only!r}",
                         code=ErrorCode.VALIDATION_FAILED, field="cases") from exc
    bad = [s for s in seeds if s not in SPLITS[split]]
    if bad or not seeds:
        raise InputError(f"--cases must name {split}-split seeds; not in the split: {bad or 'none given'}",
                         code=ErrorCode.VALIDATION_FAILED, field="cases")
    return seeds


def _row_line(i: int, row: dict[str, Any]) -> str:
    unseen = f" unseen Dice {row['unseen_dice_mean']:.3f}," if "unseen_dice_mean" in row else ""
    ef = f" EF err {row['ef_error']:+.1f}," if "ef_error" in row else ""
    return (f"[{i + 1}] {row['case']}: MAE {row['ed_mae_mm']:.2f} mm, HD {row['ed_hausdorff_mm']:.2f} mm, "
            f"vol Dice {row['ed_vol_dice']:.3f},{unseen}{ef} {row['seconds']:.0f} s")


def _accuracy_job(job: tuple[int, int, str | None, Any, int]) -> dict[str, Any]:
    """One benchmark case in a worker process (spawned, one torch thread)."""
    import torch

    from models.bench.accuracy import cohort_truth, evaluate_case

    seed, frames, prior_path, opts, threads = job
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    prior = load_prior_for(Path(prior_path) if prior_path else None, device)
    return evaluate_case(cohort_truth(seed, frames), prior, opts, device)


@bench_app.command("accuracy")
def accuracy(
    split: str = typer.Option("test", "--split", help="test (the frozen test split: report) or tuning (choose "
                                                      "settings here)."),
    n: int = typer.Option(100, "--n", min=1, help="Number of cases (from the split's first seed)."),
    noisy: bool = typer.Option(False, "--noisy", help="Use the simulator's corrupted masks."),
    ablation: str = typer.Option("none", "--ablation", help="none, no-eca, no-probe, no-motion, no-rsa, no-dr."),
    views: str | None = typer.Option(None, "--views", help="Input views, e.g. A4C,A3C (others scored as unseen)."),
    profile: str = typer.Option("default", "--profile", help="default, paper or smoke."),
    frames: int = typer.Option(20, "--frames", min=2, help="Frames per generated case."),
    prior: Path | None = typer.Option(None, "--prior", help="Shape prior checkpoint (default: shipped)."),
    device: str = typer.Option("cpu", "--device"),
    threads: int = typer.Option(1, "--threads", min=1, help="torch threads per worker."),
    workers: int = typer.Option(1, "--workers", min=1, help="Cases reconstructed in parallel (CPU only)."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="Folder for the JSON and markdown results."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many cases of the split first."),
    only: str | None = typer.Option(None, "--cases", help="Comma-separated seeds of the split (not --n/--offset)."),
    settings: list[str] = SET_OPTION,
    tag_suffix: str = typer.Option("", "--tag", help="Appended to the output file names."),
) -> None:
    """Accuracy against exact ground truth on the frozen test split or the tuning split (JSON + markdown)."""
    with user_errors():
        import torch

        from models.bench.accuracy import (
            AccuracyOptions,
            accuracy_document,
            cohort_truth,
            evaluate_case,
            write_accuracy,
        )
        from models.device import resolve_device
        from models.errors import ErrorCode, InputError
        from models.geometry.frames import VIEW_NAMES
        from models.recon.config import ReconConfig

        torch.set_num_threads(threads)
        dev = resolve_device(device)
        opts = AccuracyOptions(profile=profile, ablation=ablation, views=parse_views(views) or VIEW_NAMES,
                               noisy=noisy, overrides=parse_settings(settings))
        ReconConfig.from_profile(profile).with_ablation(ablation).with_overrides(opts.overrides)  # validate early
        shape_prior = _prior(prior, ablation, dev)  # also validates the checkpoint up front
        seeds = _split_seeds(split, n, offset, only)
        if not re.fullmatch(r"[A-Za-z0-9._-]*", tag_suffix):
            raise InputError(f"--tag may hold letters, digits, '.', '_' and '-' only, got {tag_suffix!r}",
                             code=ErrorCode.VALIDATION_FAILED, field="tag")
        n = len(seeds)
        start = time.perf_counter()
        rows: list[dict[str, Any]] = []
        if workers > 1 and dev.type == "cpu":
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            jobs = [(s, frames, str(prior) if prior else None, opts, threads) for s in seeds]
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                for i, row in enumerate(pool.map(_accuracy_job, jobs)):
                    rows.append(row)
                    typer.echo(_row_line(i, row), err=True)
        else:
            for i, seed in enumerate(seeds):
                rows.append(evaluate_case(cohort_truth(seed, frames), shape_prior, opts, dev))
                typer.echo(_row_line(i, rows[-1]), err=True)
        doc = accuracy_document(rows, opts)
        doc["command"] = "echo4d bench " + " ".join(sys.argv[sys.argv.index("accuracy"):]) \
            if "accuracy" in sys.argv else "echo4d bench accuracy"
        doc["wall_s"] = time.perf_counter() - start
        doc["threads"], doc["workers"] = threads, workers
        doc["split"] = split
        tag = (f"{profile}-{ablation}-{'+'.join(opts.views)}-{'noisy' if noisy else 'clean'}-n{n}"
               f"{'' if split == 'test' else '-' + split}{tag_suffix}")
        js, md = write_accuracy(doc, out, tag)
        typer.echo(md.read_text())
        typer.echo(f"wrote {js} and {md}")


@bench_app.command("speed")
def speed(
    study: Path | None = typer.Option(None, "--study", help="Study bundle (default: the demo synthetic case)."),
    profiles: str = typer.Option("default,paper", "--profiles", help="Comma-separated profiles to time."),
    no_3d: bool = typer.Option(False, "--no-3d", help="Skip the ED-only (3D) runs."),
    prior: Path | None = typer.Option(None, "--prior", help="Shape prior checkpoint (default: shipped)."),
    device: str = typer.Option("cpu", "--device"),
    threads: int = typer.Option(0, "--threads", min=0, help="torch CPU threads (0: torch's default, one per "
                                "core, as a worker with ECHO4D_TORCH_THREADS=0 runs)."),
    out: Path = typer.Option(DEFAULT_OUT, "--out"),
) -> None:
    """Seconds per stage, total, peak RSS and the paper/default ratio, on one study, in one process."""
    with user_errors():
        import torch

        from models.bench.speed import run_speed, write_speed
        from models.device import resolve_device

        if threads > 0:
            torch.set_num_threads(threads)
        dev = resolve_device(device)
        if study is None:
            from models.cohort.generate import CohortConfig, generate_case
            from models.cohort.writer import case_study

            data = case_study(generate_case(DEMO_SEED, CohortConfig(sdf=False, preview=False)))
        else:
            from cli.reconstruct import load_input

            data = load_input(study)
        shape_prior = load_prior_for(prior, dev)
        names = [p.strip() for p in profiles.split(",") if p.strip()]
        doc = run_speed(data, shape_prior, dev, names, include_3d=not no_3d,
                        progress=lambda name, run: typer.echo(f"{name}: {run['total_s']:.1f} s", err=True))
        js, md = write_speed(doc, out)
        typer.echo(md.read_text())
        typer.echo(f"wrote {js} and {md}")


@bench_app.command("real-lv")
def real_lv(
    path: Path = typer.Option(REAL_LV, "--path", help="bivme_patient1_lv_endo.npz"),
    noisy: bool = typer.Option(False, "--noisy"),
    views: str | None = typer.Option(None, "--views"),
    profile: str = typer.Option("default", "--profile"),
    perturbation: float = typer.Option(1.0, "--perturbation", min=0.0, max=1.0, help="Probe perturbation strength."),
    seed: int = typer.Option(0, "--seed", help="Seed of the first draw of simulated probe poses and corruption."),
    draws: int = typer.Option(5, "--draws", min=1, help="Probe-pose draws (seeds seed, seed+1, ...); mean ± sd."),
    prior: Path | None = typer.Option(None, "--prior"),
    device: str = typer.Option("cpu", "--device"),
    threads: int = typer.Option(1, "--threads", min=1),
    out: Path = typer.Option(DEFAULT_OUT, "--out"),
    settings: list[str] = SET_OPTION,
) -> None:
    """The real 4D LV (anatomy the cohort did not generate) from simulated masks, over several probe draws."""
    with user_errors():
        import torch

        from models.bench.accuracy import REAL_LV_TARGETS, AccuracyOptions, real_lv_truth, run_accuracy, write_accuracy
        from models.device import resolve_device
        from models.geometry.frames import VIEW_NAMES

        torch.set_num_threads(threads)
        dev = resolve_device(device)
        opts = AccuracyOptions(profile=profile, views=parse_views(views) or VIEW_NAMES, noisy=noisy, seed=0,
                               overrides=parse_settings(settings))
        truths = (real_lv_truth(path, seed=seed + i, perturbation_strength=perturbation) for i in range(draws))
        doc = run_accuracy(truths, load_prior_for(prior, dev), opts, dev,
                           progress=lambda i, row: typer.echo(_row_line(i, row), err=True), targets=REAL_LV_TARGETS)
        doc["command"] = "echo4d bench " + " ".join(sys.argv[sys.argv.index("real-lv"):]) \
            if "real-lv" in sys.argv else "echo4d bench real-lv"
        tag = f"real-lv-{profile}-{'+'.join(opts.views)}-{'noisy' if noisy else 'clean'}-d{draws}"
        js, md = write_accuracy(doc, out, tag)
        typer.echo(md.read_text())
        typer.echo(f"wrote {js} and {md}")
