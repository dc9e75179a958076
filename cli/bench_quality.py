"""``echo4d bench quality``: does the quality gate's level separate good from bad EF? (docs/results.md)

Imported by ``cli`` for its side effect of adding the command to ``bench_app``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from cli.bench import bench_app
from cli.common import user_errors
from cli.reconstruct import load_prior_for

DEFAULT_OUT = Path("out/bench")


@bench_app.command("quality")
def quality(
    n: int = typer.Option(20, "--n", min=1, help="Cases per set (frozen test split)."),
    sets: str = typer.Option("corrupted,bmode", "--sets", help="Some of corrupted, bmode (classic B-mode "
                       "simulator), physics (physics-grounded simulator), comma-separated."),
    offset: int = typer.Option(0, "--offset", min=0, help="First test-split seed of the corrupted set."),
    bmode_offset: int = typer.Option(50, "--bmode-offset", min=0, help="First test-split seed of the bmode "
                                  "and physics sets."),
    profile: str = typer.Option("default", "--profile", help="default, paper or smoke."),
    frames: int = typer.Option(20, "--frames", min=2, help="Frames per generated case."),
    prior: Path | None = typer.Option(None, "--prior", help="Shape prior checkpoint (default: shipped)."),
    segmenter: Path | None = typer.Option(None, "--segmenter", help="B-mode segmenter (default: shipped)."),
    device: str = typer.Option("cpu", "--device"),
    threads: int = typer.Option(1, "--threads", min=1),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="Folder for quality-*.json and .md."),
    rescore: Path | None = typer.Option(None, "--rescore", help="Re-score a finished run's JSON with the current "
                                        "thresholds (no reconstruction); writes <name>-rescored.json/.md."),
    segmentation_only: bool = typer.Option(False, "--segmentation-only", help="No reconstruction: B-mode cines of "
                                           "the bmode seeds through the segmenter; do its signals see FAC error?"),
    simulators: str = typer.Option("classic,physics", "--simulators", help="With --segmentation-only: classic, "
                                   "physics or both."),
) -> None:
    """Reconstruct corrupted-mask and synthetic B-mode cases; AUC and confusion of the quality level vs EF error."""
    with user_errors():
        import torch

        from models.cohort.splits import frozen_test_seeds
        from models.device import resolve_device
        from models.errors import ErrorCode, InputError
        from models.quality.bench import BMODE_SETS, SETS, quality_markdown, run_quality_bench, score_row, summarise
        from models.segment.lazy import LazySegmenter

        if rescore is not None:  # a finished run's JSON, or the .jsonl of rows an unfinished run left
            text = rescore.read_text()
            doc = {"rows": [json.loads(line) for line in text.splitlines() if line.strip()]} \
                if rescore.suffix == ".jsonl" else json.loads(text)
            doc["rows"] = [score_row(r) for r in doc["rows"]]
            doc["summary"] = summarise(doc["rows"])
            target = rescore.with_name(rescore.stem + "-rescored")
            target.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
            target.with_suffix(".md").write_text(quality_markdown(doc))
            typer.echo(quality_markdown(doc))
            return

        if segmentation_only:
            _segmentation_only(n, bmode_offset, simulators, frames, segmenter, device, threads, out)
            return
        chosen = [s.strip() for s in sets.split(",") if s.strip()]
        if not chosen or any(s not in SETS for s in chosen):
            raise InputError(f"--sets must list some of {', '.join(SETS)}, got {sets!r}",
                             code=ErrorCode.VALIDATION_FAILED, field="sets")
        torch.set_num_threads(threads)
        dev = resolve_device(device)
        try:
            seeds = {"corrupted": frozen_test_seeds(n, offset), "bmode": frozen_test_seeds(n, bmode_offset),
                     "physics": frozen_test_seeds(n, bmode_offset)}
        except ValueError as exc:
            raise InputError(str(exc), code=ErrorCode.VALIDATION_FAILED, field="n") from exc
        seg = LazySegmenter(segmenter, device) if set(chosen) & set(BMODE_SETS) else None

        out.mkdir(parents=True, exist_ok=True)
        tag = f"quality-{profile}-{'+'.join(chosen)}-n{n}"
        partial = out / f"{tag}.jsonl"
        partial.write_text("")

        def progress(row: dict[str, object]) -> None:
            with partial.open("a") as f:
                f.write(json.dumps(row, default=float) + "\n")
            if "error" in row:
                typer.echo(f"{row['set']} {row['case']}: refused ({row['error']})", err=True)
            else:
                typer.echo(f"{row['set']} {row['case']}: EF err {row['ef_error']:+.1f}, level {row['level']} "
                           f"(score {row['score']:.2f}), {row['seconds']:.0f} s", err=True)

        start = time.perf_counter()
        doc = run_quality_bench(chosen, seeds, load_prior_for(prior, dev), dev, seg, profile, frames, progress)
        doc["command"] = "echo4d bench " + " ".join(sys.argv[sys.argv.index("quality"):]) \
            if "quality" in sys.argv else "echo4d bench quality"
        doc["wall_s"] = time.perf_counter() - start
        doc["segmenter"] = None if seg is None else seg.name
        doc["seeds"] = {k: seeds[k] for k in chosen}
        md = quality_markdown(doc)
        (out / f"{tag}.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")
        (out / f"{tag}.md").write_text(md)
        typer.echo(md)
        typer.echo(f"wrote {out / tag}.json and .md")


def _segmentation_only(n: int, offset: int, simulators: str, frames: int, segmenter: Path | None, device: str,
                       threads: int, out: Path) -> None:
    import torch

    from models.cohort.splits import frozen_test_seeds
    from models.device import resolve_device
    from models.errors import ErrorCode, InputError
    from models.quality.segmentation_bench import (
        SIMULATORS,
        segmentation_markdown,
        segmentation_rows,
        summarise_segmentation,
    )
    from models.segment.lazy import LazySegmenter

    chosen = [s.strip() for s in simulators.split(",") if s.strip()]
    if not chosen or any(s not in SIMULATORS for s in chosen):
        raise InputError(f"--simulators must list some of {', '.join(SIMULATORS)}, got {simulators!r}",
                         code=ErrorCode.VALIDATION_FAILED, field="simulators")
    torch.set_num_threads(threads)
    try:
        seeds = frozen_test_seeds(n, offset)
    except ValueError as exc:
        raise InputError(str(exc), code=ErrorCode.VALIDATION_FAILED, field="n") from exc
    seg = LazySegmenter(segmenter, str(resolve_device(device)))
    start = time.perf_counter()
    rows = []
    for seed in seeds:
        for sim in chosen:
            for row in segmentation_rows(seed, sim, seg, frames):
                rows.append(row)
                typer.echo(f"{sim} {row['case']} {row['view']}: FAC err {row['fac_error']:.3f}, spread "
                           f"{row['segmentation_fac_spread']:.3f}, confidence {row['segmentation_confidence']:.3f}",
                           err=True)
    doc = {"rows": rows, "summary": summarise_segmentation(rows), "seeds": seeds, "segmenter": seg.name,
           "wall_s": time.perf_counter() - start,
           "command": "echo4d bench " + " ".join(sys.argv[sys.argv.index("quality"):])
           if "quality" in sys.argv else "echo4d bench quality --segmentation-only"}
    out.mkdir(parents=True, exist_ok=True)
    tag = f"quality-segmentation-{'+'.join(chosen)}-n{n}"
    md = segmentation_markdown(doc)
    (out / f"{tag}.json").write_text(json.dumps(doc, indent=2, default=float) + "\n")
    (out / f"{tag}.md").write_text(md)
    typer.echo(md)
    typer.echo(f"wrote {out / tag}.json and .md")
