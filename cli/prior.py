"""``echo4d train-prior``: train the shape prior and write a checkpoint with its JSON sidecar."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from cli.common import user_errors

DEFAULT_OUT = Path("models/checkpoints/shape_prior.pt")
DEFAULT_CACHE = Path("var/cache/prior")


def _progress_factory(enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    def make(total: int, initial: int, desc: str) -> Any:
        return tqdm(total=total, initial=initial, desc=desc, file=sys.stderr, dynamic_ncols=True, mininterval=2.0)

    return make


def train_prior_command(
    config: Path | None = typer.Option(None, "--config", exists=True, dir_okay=False,
                                       help="JSON TrainConfig overrides, applied on top of the profile."),
    profile: str = typer.Option("default", "--profile", help="smoke (tests, < 1 min) or default (~60 min CPU)."),
    out: Path = typer.Option(DEFAULT_OUT, "--out", help="Checkpoint path (.pt); the .json sidecar goes beside it."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the saved training state of this config."),
    device: str = typer.Option("cpu", "--device", help="torch device, e.g. cpu or cuda:0."),
    threads: int = typer.Option(2, "--threads", help="torch.set_num_threads for this run."),
    no_eca: bool = typer.Option(False, "--no-eca", help="Ablation: mean pooling of view features instead of ECA."),
    steps: int | None = typer.Option(None, "--steps", help="Override the number of training steps."),
    n_eval: int | None = typer.Option(None, "--n-eval", help="Test subjects evaluated for the sidecar "
                                      "(default 5; 2 for smoke)."),
    cache_dir: Path = typer.Option(DEFAULT_CACHE, "--cache-dir",
                                   help="Where the training pool and resumable state are cached (outside git)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars on stderr."),
) -> None:
    """Train the shape prior (decoder + Epipolar Mask Encoder) and write checkpoint + sidecar."""
    with user_errors():
        import torch

        from models.prior.config import TrainConfig
        from models.prior.run import merge_config, train_and_save

        torch.set_num_threads(max(1, threads))
        base = TrainConfig.profile(profile).to_dict()
        if config is not None:
            base = merge_config(base, json.loads(config.read_text()))
        if no_eca:
            base = merge_config(base, {"prior": {"use_eca": False}})
        if steps is not None:
            base = merge_config(base, {"steps": steps})
        cfg = TrainConfig.from_dict(base)
        n = n_eval if n_eval is not None else (2 if profile == "smoke" else 5)
        metrics = train_and_save(cfg, out, n_eval_subjects=n, device=device, cache_dir=cache_dir, resume=resume,
                                 progress=_progress_factory(progress))
        summary = metrics.get("test", {}).get("summary", {})
        typer.echo(f"wrote {out} ({metrics['train_steps']} steps, {metrics['train_seconds']} s)")
        for views in ("A4C+A2C+A3C", "A4C+A2C", "A4C"):
            if views in summary:
                s = summary[views]
                typer.echo(f"  {views:12s} MAE {s['mae_mm']:.2f} mm  RMSE {s['rmse_mm']:.2f} mm  "
                           f"HD {s['hausdorff_mm']:.2f} mm  Dice {s['dice']:.3f}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("train-prior")(train_prior_command)
