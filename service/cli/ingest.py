"""`echo4d ingest` (any input → a study bundle + preview) and `echo4d train-segmenter`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from service.cli.common import user_errors


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
    profile_name: str = typer.Option("default", "--profile", help="default (shipped checkpoint) or smoke (< 1 min)."),
    out: Path = typer.Option(Path("models/checkpoints/segmenter.pt"), "--out", help="Checkpoint path (.pt + .json)."),
    steps: int | None = typer.Option(None, "--steps", help="Override the profile's step count."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data and the initialisation."),
    workers: int = typer.Option(1, "--workers", help="Processes generating the synthetic training images."),
    threads: int | None = typer.Option(None, "--threads", help="Torch CPU threads (1 is fastest on a busy machine)."),
    n_train: int | None = typer.Option(None, "--n-train", help="Override the number of training pairs (trials)."),
    n_val: int | None = typer.Option(None, "--n-val", help="Override the number of validation pairs."),
    device: str = typer.Option("cpu", "--device", help="Torch device."),
) -> None:
    """Train the B-mode LV segmenter on synthetic cohort images and write the checkpoint + sidecar."""
    with user_errors():
        import torch

        from models.cohort.version import GENERATOR_VERSION
        from models.segment.checkpoint import save_checkpoint
        from models.segment.train import profile, train_segmenter

        if threads is not None:
            torch.set_num_threads(threads)
        overrides: dict[str, Any] = {"seed": seed, "workers": workers}
        if steps is not None:
            overrides["steps"] = steps
        try:
            cfg = profile(profile_name, n_train=n_train, n_val=n_val, **overrides)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

        def progress(step: int, metrics: dict[str, float]) -> None:
            typer.echo(f"step {step}/{cfg.steps}: loss {metrics['loss']:.4f}, val Dice {metrics['val_dice_mean']:.4f}"
                       f" (median {metrics['val_dice_median']:.4f})")

        result = train_segmenter(cfg, device, progress)
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
        from pydicom import examples

        from models.segment.real_check import check_clip
        from models.segment.runtime import load_segmenter

        seg = load_segmenter(segmenter, device)
        clips: list[tuple[str, list[Path], dict[str, Any]]] = [
            # a4c_sequence.nii.gz stores no frame time: 25 fps is assumed (it only scales the time axis).
            ("a4c_sequence", [real_echo / "a4c_sequence.nii.gz"], {"view": "A4C", "fps": 25.0}),
            ("pydicom_ybr_color", [Path(examples.get_path("ybr_color"))], {"view": "A4C"}),
        ]
        out.mkdir(parents=True, exist_ok=True)
        summary: dict[str, Any] = {"segmenter": seg.name, "clips": []}
        for name, paths, manifest in clips:
            if not paths[0].is_file():
                typer.echo(f"skipped {name}: {paths[0]} not found")
                continue
            check, png = check_clip(name, paths, manifest, seg)
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
