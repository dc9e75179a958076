"""``echo4d bench prior`` (encoder-only accuracy of shape priors) and ``echo4d bench prior-decoders``
(decoder size trade-off). Registered on the bench sub-app when this module is imported."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from cli.bench import bench_app
from cli.common import user_errors

METRIC_COLUMNS = ("mae_mm", "rmse_mm", "hausdorff_mm", "chamfer_mm", "dice", "iou", "abs_volume_error_ml")


def _table(summaries: dict[str, dict[str, Any]], phases: tuple[str, ...]) -> str:
    head = "| model | views | phase | n | MAE | RMSE | HD | Chamfer | Dice | IoU | abs ΔV (mL) |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for model, summary in summaries.items():
        for key, s in summary.items():
            views, _, phase = key.partition("@")
            if phase not in phases:
                continue
            vals = " | ".join(f"{s[c]:.3f}" if c in ("dice", "iou") else f"{s[c]:.2f} ± {s[c + '_std']:.2f}"
                              for c in METRIC_COLUMNS)
            lines.append(f"| {model} | {views} | {phase} | {s['n']} | {vals} |")
    return "\n".join(lines)


@bench_app.command("prior")
def bench_prior(
    n: int = typer.Option(20, "--n", help="Frozen test-split subjects (ED and ES of each)."),
    checkpoint: list[Path] = typer.Option(None, "--checkpoint", help="Checkpoint(s) to compare "
                                          "(default: the shipped prior)."),
    json_out: Path | None = typer.Option(None, "--json", help="Write all rows and summaries here."),
    threads: int = typer.Option(2, "--threads"),
) -> None:
    """Encoder-only accuracy (no test-time optimisation) for 3 views, each pair and each single view."""
    with user_errors():
        import torch
        from tqdm import tqdm

        from models.prior.checkpoint import DEFAULT_CHECKPOINT, load_prior, read_sidecar
        from models.prior.data import ALL_SUBSETS, make_source
        from models.prior.evaluate import evaluate_prior

        torch.set_num_threads(max(1, threads))
        paths = list(checkpoint) if checkpoint else [DEFAULT_CHECKPOINT]
        results: dict[str, Any] = {}
        for path in paths:
            prior = load_prior(path, "cpu")
            source = make_source(read_sidecar(path)["train_config"].get("data_source", "cohort"))
            bar = tqdm(total=n, desc=path.stem, file=sys.stderr)
            results[path.stem] = evaluate_prior(prior, source.test_seeds()[:n], ALL_SUBSETS, device="cpu",
                                                source=source, progress=lambda i, t, b=bar: b.update(1))  # type: ignore[misc]
            bar.close()
        typer.echo(_table({k: v["summary"] for k, v in results.items()}, ("",)))
        typer.echo()
        typer.echo(_table({k: v["summary"] for k, v in results.items()}, ("ed", "es")))
        if json_out is not None:
            json_out.write_text(json.dumps(results, indent=1))


@bench_app.command("prior-decoders")
def bench_prior_decoders(
    subjects: int = typer.Option(6, "--subjects", help="Training subjects in the auto-decoding pool."),
    budget_s: float = typer.Option(60.0, "--budget-s", help="Equal CPU time given to every candidate."),
    threads: int = typer.Option(2, "--threads"),
    cache_dir: Path = typer.Option(Path("var/cache/prior"), "--cache-dir"),
    candidates: str = typer.Option("8x512+ff,6x256+ff,5x192+ff,4x128+ff,5x192+ff+silu,5x192", "--candidates",
                                   help="Comma-separated DEPTHxWIDTH[+ff][+silu] decoders."),
) -> None:
    """Decoder size trade-off: ms per Adam step at 4,096 points and accuracy reached in equal time."""
    with user_errors():
        import torch

        from models.prior.config import TrainConfig
        from models.prior.data import make_source
        from models.prior.pool import cached_pool
        from models.prior.sizing import decoder_tradeoff, default_candidates

        torch.set_num_threads(max(1, threads))
        cfg = TrainConfig(n_subjects=subjects, mask_variants=1)
        source = make_source(cfg.data_source)
        pool = cached_pool(source, cfg, source.training_seeds(subjects), cache_dir)
        rows = decoder_tradeoff(pool, cfg.prior, budget_s, default_candidates(cfg.prior, candidates.split(",")))
        typer.echo(f"pool: {pool.n_shapes} shapes; budget {budget_s:.0f} s per decoder; threads {threads}")
        typer.echo("| decoder | params | ms/step (4,096 pts) | steps in budget | held-out L1 near surface (mm) "
                   "| held-out clamped L1 all (mm) |")
        typer.echo("|---|---|---|---|---|---|")
        for r in rows:
            typer.echo(f"| {r['decoder']} | {r['params']:,} | {r['ms_per_step']:.1f} | {r['steps']} | "
                       f"{r['near_l1_mm']:.3f} | {r['clamped_l1_mm']:.3f} |")
