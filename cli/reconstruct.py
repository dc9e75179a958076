"""``echo4d reconstruct`` (one study → 4D mesh outputs) and ``echo4d demo`` (a built-in synthetic case).

Heavy imports (torch, models.recon, models.export) happen inside the command bodies.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cli.common import user_errors

if TYPE_CHECKING:  # types only: `echo4d --help` stays torch-free
    import torch

    from models.prior.model import ShapePrior
    from models.recon.result import ReconResult
    from models.study import Study

DEMO_SEED = 900_000
"""The demo case: the first seed of the frozen test split (never seen in training)."""


@contextlib.contextmanager
def stage_progress(enabled: bool = True) -> Iterator[Callable[[str, float], None]]:
    """A ``progress(stage, fraction)`` callback drawing one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}
    current: list[str] = []

    def progress(stage: str, fraction: float) -> None:
        if not enabled:
            return
        if not current or current[-1] != stage:
            if current:
                bars[current[-1]].update(100 - bars[current[-1]].n)
                bars[current[-1]].close()
            bars[stage] = tqdm(total=100, desc=f"{stage:<7}", file=sys.stderr, leave=True,
                               bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}")
            current.append(stage)
        bar = bars[stage]
        bar.update(max(round(100 * fraction) - bar.n, 0))

    try:
        yield progress
    finally:
        if current:
            bar = bars[current[-1]]
            bar.update(100 - bar.n)
            bar.close()


def parse_views(views: str | None) -> tuple[str, ...] | None:
    """``"A4C,A2C"`` → ("A4C", "A2C"); None → None (all views of the study)."""
    if views is None:
        return None
    from models.errors import ErrorCode, InputError
    from models.geometry.frames import VIEW_NAMES

    names = tuple(v.strip().upper() for v in views.split(",") if v.strip())
    bad = [v for v in names if v not in VIEW_NAMES]
    if bad or not names:
        raise InputError(f"--views must list some of {', '.join(VIEW_NAMES)}, got {views!r}",
                         code=ErrorCode.UNKNOWN_VIEW, field="views")
    return names


def load_input(path: Path, *, view: str | None = None, spacing: str | None = None, fps: float | None = None,
               segmenter: Path | None = None, device: str = "cpu") -> Study:
    """A :class:`models.study.Study` from a bundle, or from any format ``models.ingest`` reads (DICOM,
    MP4/AVI, NIfTI, PNG folders, .npy). ``view``/``spacing``/``fps`` fill in what the container lacks
    (the ingest manifest's defaults); B-mode is segmented by ``segmenter`` (default: the shipped one),
    loaded only when a B-mode view needs it."""
    from cli.ingest import parse_spacing
    from models.ingest import load_any
    from models.segment.lazy import LazySegmenter

    defaults: dict[str, Any] = {"view": view, "pixel_spacing_mm": parse_spacing(spacing), "fps": fps}
    manifest = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items() if v is not None}
    study: Study = load_any(path, manifest or None, segmenter=LazySegmenter(segmenter, device))
    return study


def load_prior_for(prior_path: Path | None, device: torch.device) -> ShapePrior:
    """The shape prior at ``prior_path``, or the shipped default checkpoint."""
    from models.prior.checkpoint import load_default_prior, load_prior

    return load_prior(prior_path, device) if prior_path is not None else load_default_prior(device)


def run_reconstruction(study: Study, out: Path, *, device_name: str, views: str | None, profile: str,
                       frames: int | None, prior_path: Path | None, seed: int, threads: int, ed_only: bool,
                       show_progress: bool, study_info: dict[str, Any]) -> tuple[ReconResult, dict[str, Path]]:
    """Reconstruct ``study`` and write its outputs to ``out``; returns (result, files)."""
    import torch

    from models.device import resolve_device
    from models.export.writer import write_outputs
    from models.recon.pipeline import ReconConfig, reconstruct_study

    torch.set_num_threads(max(threads, 1))
    device = resolve_device(device_name)
    config = ReconConfig.from_profile(profile, seed=seed, views=parse_views(views), n_frames=frames, ed_only=ed_only)
    prior = load_prior_for(prior_path, device)
    with stage_progress(show_progress) as progress:
        result = reconstruct_study(study, prior, config, device, progress=progress)
    info = {"views": list(config.views or study.view_names), "profile": profile, **study_info}
    files = write_outputs(result, out, info, study)
    return result, files


def register(app: typer.Typer) -> None:
    """Add ``reconstruct`` and ``demo`` to the root app."""

    @app.command("reconstruct")
    def reconstruct(
        study: Path = typer.Argument(..., help="Study bundle (directory or .zip), or any input `echo4d ingest` reads: "
                                               "DICOM file/folder, MP4/AVI, NIfTI, PNG folder, .npy."),
        out: Path = typer.Option(..., "--out", help="Output folder (report.json, mesh.glb, meshes/, ...)."),
        view: str | None = typer.Option(None, "--view", help="View of the input when the file does not say: "
                                                             "A4C, A2C or A3C."),
        fps: float | None = typer.Option(None, "--fps", help="Frame rate when the file does not say (overrides it)."),
        spacing: str | None = typer.Option(None, "--spacing", help="Pixel spacing ROW_MM,COL_MM (or one number) "
                                                                   "when the file does not say (overrides it)."),
        segmenter: Path | None = typer.Option(None, "--segmenter", help="B-mode segmenter (default: "
                                              "ECHO4D_SEGMENTER, else the shipped checkpoint)."),
        device: str = typer.Option("cpu", "--device", help="auto, cpu, cuda or cuda:N."),
        views: str | None = typer.Option(None, "--views", help="Comma-separated subset, e.g. A4C,A2C."),
        profile: str = typer.Option("default", "--profile", help="default, paper or smoke."),
        frames: int | None = typer.Option(None, "--frames", min=2, help="Resample the cycle to N frames."),
        prior: Path | None = typer.Option(None, "--prior", help="Shape prior checkpoint (default: shipped)."),
        seed: int = typer.Option(0, "--seed", help="Random seed (results are deterministic per seed)."),
        threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for torch."),
        ed_only: bool = typer.Option(False, "--ed-only", help="3D: reconstruct the ED frame only."),
        quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
    ) -> None:
        """Reconstruct a 4D LV mesh sequence from apical masks and write the outputs."""
        with user_errors():
            from jobcore.settings import Settings

            data = load_input(study, view=view, spacing=spacing, fps=fps,
                              segmenter=segmenter or Settings().segmenter, device=device)
            result, files = run_reconstruction(
                data, out, device_name=device, views=views, profile=profile, frames=frames, prior_path=prior,
                seed=seed, threads=threads, ed_only=ed_only, show_progress=not quiet,
                study_info={"input": study.name},
            )
            typer.echo(summary_line(result))
            typer.echo(f"outputs: {out.resolve()} ({len(files)} files; report.json, mesh.glb, meshes/, ed.ply, "
                       "es.ply, preview.png)")

    @app.command("demo")
    def demo(
        out: Path | None = typer.Option(None, "--out", help="Output folder (default: a new temporary folder)."),
        device: str = typer.Option("cpu", "--device", help="auto, cpu, cuda or cuda:N."),
        profile: str = typer.Option("default", "--profile", help="default, paper or smoke."),
        prior: Path | None = typer.Option(None, "--prior", help="Shape prior checkpoint (default: shipped)."),
        threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for torch."),
    ) -> None:
        """Generate a built-in synthetic case, reconstruct it, print outputs and EDV/ESV/EF vs truth."""
        with user_errors():
            from models.cohort.generate import CohortConfig, generate_case
            from models.cohort.writer import case_study

            target = out if out is not None else Path(tempfile.mkdtemp(prefix="echo4d-demo-"))
            typer.echo(f"generating synthetic case {DEMO_SEED} (frozen test split)...")
            case = generate_case(DEMO_SEED, CohortConfig(sdf=False, preview=False))
            study = case_study(case, noisy=False)
            result, files = run_reconstruction(
                study, target, device_name=device, views=None, profile=profile, frames=None, prior_path=prior,
                seed=0, threads=threads, ed_only=False, show_progress=True,
                study_info={"input": f"demo-case-{DEMO_SEED}", "synthetic": True},
            )
            truth = {"edv_ml": case.cycle.edv_ml, "esv_ml": case.cycle.esv_ml, "ef_percent": case.cycle.ef_percent}
            (target / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
            typer.echo(summary_line(result))
            typer.echo(f"truth:          EDV {truth['edv_ml']:.1f} mL, ESV {truth['esv_ml']:.1f} mL, "
                       f"EF {truth['ef_percent']:.1f} %")
            typer.echo(f"error:          EDV {result.edv_ml - truth['edv_ml']:+.1f} mL, "
                       f"ESV {result.esv_ml - truth['esv_ml']:+.1f} mL, "
                       f"EF {result.ef_percent - truth['ef_percent']:+.1f} points")
            typer.echo(f"outputs: {target.resolve()} ({len(files)} files; open mesh.glb in any glTF viewer)")


def summary_line(result: ReconResult) -> str:
    """One line: EDV, ESV, EF and total time of a result."""
    return (f"reconstruction: EDV {result.edv_ml:.1f} mL, ESV {result.esv_ml:.1f} mL, EF {result.ef_percent:.1f} % "
            f"({result.n_frames} frames, {result.timings_s.get('total', float('nan')):.1f} s)")
