"""``echo4d bench segment``: segmenter Dice on the synthetic validation split by phase and view, and the
real-cine plausibility proxies (registered on the bench sub-app when imported)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from service.cli.bench import bench_app
from service.cli.common import user_errors

GROUPS = ("all", "ED", "ES", "ED/A2C", "ED/A3C", "ED/A4C", "ES/A2C", "ES/A3C", "ES/A4C")


def _dice_table(results: dict[str, dict[str, dict[str, dict[str, float]]]]) -> str:
    head = "| segmenter | simulator | " + " | ".join(GROUPS) + " |"
    lines = [head, "|" + "---|" * (len(GROUPS) + 2)]
    for name, per_sim in results.items():
        for sim, groups in per_sim.items():
            cells = [f"{groups[g]['mean']:.3f}" if g in groups else "-" for g in GROUPS]
            lines.append(f"| {name} | {sim} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@bench_app.command("segment")
def bench_segment(
    segmenter: list[Path] = typer.Option(None, "--segmenter", help="Segmenter(s) to compare (default: shipped)."),
    n: int = typer.Option(20, "--n", help="Validation subjects (ED and ES in A2C, A3C, A4C each)."),
    simulator: list[str] = typer.Option(["physics", "classic"], "--simulator", help="physics and/or classic."),
    real_echo: Path = typer.Option(Path("../shared/data/real-echo"), "--real-echo",
                                   help="Folder with a4c_sequence.nii.gz (the real-cine proxies; skipped if absent)."),
    workers: int = typer.Option(1, "--workers", help="Processes rendering the synthetic split."),
    threads: int = typer.Option(1, "--threads"),
    json_out: Path | None = typer.Option(None, "--json", help="Write everything here."),
) -> None:
    """Dice by phase (ED/ES) and view on held-out synthetic B-mode; area-curve proxies on the real cines."""
    with user_errors():
        import torch
        from pydicom import examples

        from models.segment.bench import area_proxies, bench_split, dice_by_group
        from models.segment.data import DataConfig
        from models.segment.real_check import check_clip
        from models.segment.runtime import load_segmenter

        torch.set_num_threads(max(1, threads))
        for sim in simulator:
            if sim not in ("physics", "classic"):
                raise typer.BadParameter(f"--simulator {sim!r}: expected physics or classic")
        paths: list[Path | None] = list(segmenter) if segmenter else [None]
        splits = {sim: bench_split(n, DataConfig(simulator=sim), workers) for sim in simulator}  # type: ignore[arg-type]
        clips: list[tuple[str, Path, dict[str, Any]]] = [
            ("a4c_sequence", real_echo / "a4c_sequence.nii.gz", {"view": "A4C", "fps": 25.0}),
            ("pydicom_ybr_color", Path(examples.get_path("ybr_color")), {"view": "A4C"})]
        out: dict[str, Any] = {"n_subjects": n, "dice": {}, "real": {}}
        for path in paths:
            seg = load_segmenter(path)
            out["dice"][seg.name] = {sim: dice_by_group(seg, s) for sim, s in splits.items()}
            for name, clip, manifest in clips:
                if not clip.is_file():
                    typer.echo(f"skipped {name}: {clip} not found")
                    continue
                for temporal in (False, True):
                    seg.temporal = temporal  # type: ignore[attr-defined]
                    check, _ = check_clip(name, [clip], manifest, seg)
                    key = f"{name} ({'temporal filter' if temporal else 'per frame'})"
                    out["real"].setdefault(seg.name, {})[key] = area_proxies(check.to_dict(), check.areas_cm2,
                                                                               check.lengths_mm)
        typer.echo(_dice_table(out["dice"]))
        typer.echo()
        typer.echo("| segmenter | clip | area min/median/max (cm²) | jitter | max jump (cm²) | FAC | "
                   "length min/median/max (mm) | empty |")
        typer.echo("|---|---|---|---|---|---|---|---|")
        for name, per_clip in out["real"].items():
            for clip_name, p in per_clip.items():
                typer.echo(f"| {name} | {clip_name} | {p['area_cm2_min_median_max']} | {p['area_jitter']} | "
                           f"{p['area_max_jump_cm2']} | {p['fractional_area_change']} | "
                           f"{p['length_mm_min_median_max']} | {p['empty_frames']} |")
        if json_out is not None:
            json_out.write_text(json.dumps(out, indent=1) + "\n")
