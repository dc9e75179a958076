"""`echo4d ingest` (any input → a study bundle + preview) and `echo4d train-segmenter`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from cli.common import user_errors


def parse_spacing(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    from models.errors import ErrorCode, InputError

    parts = text.replace("x", ",").split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"--spacing {text!r}: expected ROW_MM,COL_MM (or one number for both)",
                         code=ErrorCode.BAD_SPACING, field="--spacing") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise InputError(f"--spacing {text!r}: expected ROW_MM,COL_MM", code=ErrorCode.BAD_SPACING, field="--spacing")
    return values[0], values[1]


def ingest_command(
    inputs: list[Path] = typer.Argument(..., help="DICOM files/folders, MP4/AVI, NIfTI, .npy, PNG folders/zips, "
                                                  "or a study bundle."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to write the study bundle (study.json + .npy)."),
    view: str | None = typer.Option(None, "--view", help="View of the input(s): A4C, A2C or A3C."),
    label: int | None = typer.Option(None, "--label", help="LV cavity label in multi-label masks (default 1)."),
    spacing: str | None = typer.Option(None, "--spacing", help="Pixel spacing ROW_MM,COL_MM (overrides metadata)."),
    fps: float | None = typer.Option(None, "--fps", help="Frame rate (overrides metadata)."),
    kind: str | None = typer.Option(None, "--kind", help="auto | masks | images (default auto)."),
    manifest: Path | None = typer.Option(None, "--manifest", help="Ingest manifest JSON (per-file view/spacing/fps)."),
    segmenter: Path | None = typer.Option(None, "--segmenter",
                                          help="TorchScript or echo4d checkpoint (default: the shipped one)."),
    device: str = typer.Option("cpu", "--device", help="Torch device for segmentation."),
    preview: bool = typer.Option(True, "--preview/--no-preview", help="Write preview.png next to study.json."),
) -> None:
    """Convert inputs into a validated study bundle (and a preview PNG with ED/ES marked)."""
    with user_errors():
        from models.errors import ErrorCode, InputError
        from models.ingest import ingest
        from models.segment.lazy import LazySegmenter
        from models.study import save_study

        doc: dict[str, Any] | None = None
        if manifest is not None:
            try:
                doc = json.loads(manifest.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InputError(f"{manifest.name} is not readable JSON ({type(exc).__name__})",
                                 code=ErrorCode.INVALID_MANIFEST, field="--manifest") from None
        if kind is not None and kind not in ("auto", "masks", "images"):
            raise InputError(f"--kind must be auto, masks or images, got {kind!r}", code=ErrorCode.INVALID_MANIFEST,
                             field="--kind")
        result = ingest(inputs, doc, view=view, spacing_mm=parse_spacing(spacing), fps=fps, label=label,
                        kind=kind,  # type: ignore[arg-type]
                        segmenter=LazySegmenter(segmenter, device))
        manifest_path = save_study(result.study, out)
        typer.echo(f"wrote {manifest_path}")
        for name in result.study.view_names:
            v = result.study.views[name]
            typer.echo(f"  {name}: {v.n_frames} frames {v.masks.shape[1]}×{v.masks.shape[2]} px, "
                       f"spacing {v.pixel_spacing_mm[0]:.4g}×{v.pixel_spacing_mm[1]:.4g} mm, {v.fps:.4g} fps")
        for warning in result.report.warnings:
            typer.echo(f"  warning: {warning}")
        if preview:
            from models.ingest.preview import render_preview

            png = out / "preview.png"
            png.write_bytes(render_preview(result.study, result.images, title=f"echo4d ingest → {out.name}"))
            typer.echo(f"wrote {png}")


def train_segmenter_command(
    profile_name: str | None = typer.Option(
        None, "--profile", help="physics (the shipped one: fine-tunes --init on the physics simulator), default (the "
        "classic simulator, from scratch), smoke (< 1 min); with --data: finetune."),
    out: Path = typer.Option(Path("models/checkpoints/segmenter.pt"), "--out", help="Checkpoint path (.pt + .json)."),
    data_dir: Path | None = typer.Option(None, "--data", help="Fine-tune on a site's labelled frames in this folder "
                                         "(X.mhd + X_gt.mhd, NIfTI or PNG pairs; per-patient folders are fine)."),
    lv_label: int = typer.Option(1, "--lv-label", help="With --data: the label value of the LV cavity."),
    init: Path | None = typer.Option(None, "--init", help="Start from this echo4d segmenter checkpoint "
                                     "(with --data: the shipped one unless given)."),
    steps: int | None = typer.Option(None, "--steps", help="Override the profile's step count."),
    budget_minutes: float | None = typer.Option(
        None, "--budget-minutes",
        help="Stop training after this wall time (the learning-rate schedule follows time or steps, "
             "whichever is ahead)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data and the initialisation."),
    workers: int = typer.Option(1, "--workers", help="Processes generating the synthetic training images."),
    threads: int | None = typer.Option(None, "--threads", help="Torch CPU threads (1 is fastest on a busy machine)."),
    n_train: int | None = typer.Option(None, "--n-train", help="Override the number of training pairs (trials)."),
    n_val: int | None = typer.Option(None, "--n-val", help="Override the number of validation pairs."),
    device: str = typer.Option("cpu", "--device", help="Torch device."),
) -> None:
    """Train the B-mode LV segmenter (synthetic images, or a site's labelled frames with --data) and write
    the checkpoint + sidecar (point ECHO4D_SEGMENTER / --segmenter at it)."""
    with user_errors():
        import torch

        from models.cohort.version import GENERATOR_VERSION
        from models.segment.checkpoint import DEFAULT_CHECKPOINT, read_sidecar, save_checkpoint
        from models.segment.network import SegmenterConfig
        from models.segment.train import profile, train_segmenter

        if threads is not None:
            torch.set_num_threads(threads)
        name = profile_name or ("finetune" if data_dir is not None else "default")
        overrides: dict[str, Any] = {"seed": seed, "workers": workers}
        if steps is not None:
            overrides["steps"] = steps
        if data_dir is not None:
            init = init or DEFAULT_CHECKPOINT
            overrides["network"] = SegmenterConfig.from_dict(read_sidecar(init)["config"])
        if init is not None:
            overrides["init"] = str(init)
        if budget_minutes is not None:
            overrides["budget_s"] = 60.0 * budget_minutes
        try:
            cfg = profile(name, n_train=n_train, n_val=n_val, **overrides)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        arrays = None
        if data_dir is not None:
            from dataclasses import replace

            from models.segment.site_data import load_site_data

            site = load_site_data(data_dir, cfg.network.size, lv_label)
            arrays = (site.train_x, site.train_y, site.val_x, site.val_y)
            cfg = replace(cfg, data=replace(cfg.data, source="site", size=cfg.network.size,
                                            n_train=len(site.train_x), n_val=len(site.val_x)))
            typer.echo(f"{site.n_files} labelled files: {len(site.train_x)} training / {len(site.val_x)} "
                       "validation frames")

        def progress(step: int, metrics: dict[str, float]) -> None:
            typer.echo(f"step {step}/{cfg.steps}: loss {metrics['loss']:.4f}, val Dice {metrics['val_dice_mean']:.4f}"
                       f" (median {metrics['val_dice_median']:.4f})")

        try:
            result = train_segmenter(cfg, device, progress, arrays)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        path = save_checkpoint(result.model, out, train_config=cfg.to_dict(), metrics=result.metrics,
                               curves=result.curves, cohort_version=GENERATOR_VERSION)
        typer.echo(f"wrote {path} and {path.with_suffix('.json').name}: "
                   + ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items()))


def check_segmenter_command(
    segmenter: Path | None = typer.Option(None, "--segmenter", help="Checkpoint or TorchScript (default: shipped)."),
    out: Path = typer.Option(Path("docs/img"), "--out", help="Folder for the overlay PNGs and the JSON summary."),
    real_echo: Path = typer.Option(Path("../shared/data/real-echo"), "--real-echo",
                                   help="Folder holding a4c_sequence.nii.gz (see its NOTICE)."),
    device: str = typer.Option("cpu", "--device", help="Torch device."),
) -> None:
    """Run a segmenter on the real cines (a4c_sequence.nii.gz, pydicom's ybr_color) and write overlays."""
    with user_errors():
        from models.segment.real_check import check_clip, real_clips
        from models.segment.runtime import load_segmenter

        seg = load_segmenter(segmenter, device)
        out.mkdir(parents=True, exist_ok=True)
        summary: dict[str, Any] = {"segmenter": seg.name, "clips": []}
        for name, path, manifest in real_clips(real_echo):
            if not path.is_file():
                typer.echo(f"skipped {name}: {path} not found")
                continue
            check, png = check_clip(name, [path], manifest, seg)
            (out / f"segmenter_{name}.png").write_bytes(png)
            summary["clips"].append(check.to_dict())
            typer.echo(json.dumps(check.to_dict()))
        (out / "segmenter_real.json").write_text(json.dumps(summary, indent=2) + "\n")
        typer.echo(f"wrote {out}/segmenter_*.png and segmenter_real.json")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("ingest", help="Convert DICOM/video/NIfTI/PNG/.npy inputs into a study bundle.")(ingest_command)
    app.command("train-segmenter", help="Train the B-mode LV segmenter on synthetic images.")(
        train_segmenter_command)
    app.command("check-segmenter", help="Run the segmenter on the real example cines; write overlays.")(
        check_segmenter_command)
