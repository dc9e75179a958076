"""``echo4d bench segment``: segmenter Dice on the synthetic validation split by phase and view, and the
real-cine plausibility proxies (registered on the bench sub-app when imported)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from cli.bench import bench_app
from cli.common import user_errors

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

        from models.segment.bench import area_proxies, bench_split, dice_by_group
        from models.segment.data import DataConfig
        from models.segment.real_check import check_clip, real_clips
        from models.segment.runtime import load_segmenter

        torch.set_num_threads(max(1, threads))
        for sim in simulator:
            if sim not in ("physics", "classic"):
                raise typer.BadParameter(f"--simulator {sim!r}: expected physics or classic")
        paths: list[Path | None] = list(segmenter) if segmenter else [None]
        splits = {sim: bench_split(n, DataConfig(simulator=sim), workers) for sim in simulator}  # type: ignore[arg-type]
        clips = real_clips(real_echo)
        out: dict[str, Any] = {"n_subjects": n, "dice": {}, "real": {}}
        for path in paths:
            seg = load_segmenter(path, "cpu")
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


# Rough LV cavity regions of the two real cines (hand-placed ellipses: centre row, col, semi-axes in
# pixels, frame 0), used only to split their intensity histograms into inside / outside.
REAL_CAVITIES = {"a4c_sequence": (190, 315, 85, 32), "pydicom_ybr_color": (95, 172, 28, 20)}


@bench_app.command("bmode-realism")
def bench_bmode_realism(
    n: int = typer.Option(24, "--n", help="Synthetic frames per simulator."),
    real_echo: Path = typer.Option(Path("../shared/data/real-echo"), "--real-echo"),
    figure: Path | None = typer.Option(None, "--figure", help="Write the side-by-side PNG here."),
    seed: int = typer.Option(700_000, "--seed", help="First (training-range) subject seed."),
) -> None:
    """Real vs synthetic B-mode statistics: intensities inside/around the cavity, speckle size, fan geometry."""
    with user_errors():
        import numpy as np

        from models.cohort.echo_stats import image_stats, synthetic_frames
        from models.ingest.loader import blank_outside, decode_inputs
        from models.segment.real_check import real_clips

        rows: dict[str, dict[str, Any]] = {}
        shown: dict[str, Any] = {}
        hist: dict[str, Any] = {}
        for name, clip, manifest in real_clips(real_echo):
            if not clip.is_file():
                typer.echo(f"skipped {name}: {clip} not found")
                continue
            decoded, _ = decode_inputs([clip], manifest, kind="images")
            frame = blank_outside(decoded[0].frames, decoded[0].region)[0]
            spacing = decoded[0].source.pixel_spacing_mm
            assert spacing is not None
            r0, c0, a, b = REAL_CAVITIES[name]
            rr, cc = np.mgrid[0 : frame.shape[0], 0 : frame.shape[1]]
            cavity = ((rr - r0) / a) ** 2 + ((cc - c0) / b) ** 2 <= 1.0
            rows[f"real: {name}"] = image_stats(frame, cavity, spacing)
            shown[f"real: {name}"] = frame
            hist[f"real: {name}"] = (frame, cavity)
        for sim in ("physics", "classic"):
            frames = synthetic_frames(n, seed, sim)
            stats = [image_stats(f, m, sp) for f, m, sp in frames]
            rows[f"synthetic {sim} (median of {n})"] = {k: float(np.nanmedian([s[k] for s in stats])) for k in stats[0]}
            rows[f"synthetic {sim} (10th-90th pct)"] = {
                k: tuple(float(np.nanpercentile([s[k] for s in stats], q)) for q in (10, 90)) for k in stats[0]}
            for k, (f, _m, _) in enumerate(frames[: 4 if sim == "physics" else 1]):
                shown[f"{sim} #{k}"] = f
            hist[f"synthetic {sim}"] = (np.concatenate([f.ravel() for f, _, _ in frames]),
                                        np.concatenate([m.ravel() for _, m, _ in frames]))
        keys = list(next(iter(rows.values())))
        typer.echo("| image | " + " | ".join(keys) + " |")
        typer.echo("|---|" + "---|" * len(keys))
        for name, s in rows.items():
            cells = [f"{v[0]:.2f}–{v[1]:.2f}" if isinstance(v, tuple) else f"{v:.2f}" for v in s.values()]
            typer.echo(f"| {name} | " + " | ".join(cells) + " |")
        if figure is not None:
            figure.parent.mkdir(parents=True, exist_ok=True)
            figure.write_bytes(_realism_figure(shown, hist))
            typer.echo(f"wrote {figure}")


def _realism_figure(shown: dict[str, Any], hist: dict[str, Any]) -> bytes:
    import io

    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 5.4), dpi=72)
    axes: Any = fig.subplots(2, 4)
    for ax, (name, frame) in zip(axes.ravel()[:7], shown.items(), strict=False):
        nz = frame[frame > 0]
        top = float(np.percentile(nz, 99)) if nz.size else 255.0
        ax.imshow(np.clip(frame / max(top, 1.0), 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    ax = axes.ravel()[7]
    for name, (values, inside) in hist.items():
        v = values.ravel().astype(np.float64)
        nz = v > 0
        top = float(np.percentile(v[nz], 99))
        x = v / max(top, 1.0)
        ins, out = inside.ravel() & nz, ~inside.ravel() & nz
        bins = np.linspace(0, 1, 26)
        line = ax.plot(bins[:-1], np.histogram(x[ins], bins, density=True)[0], "-", lw=1.2, label=f"{name} cavity")
        ax.plot(bins[:-1], np.histogram(x[out], bins, density=True)[0], "--", lw=1.0, color=line[0].get_color(),
                label=f"{name} outside")
    ax.set_xlabel("grey / 99th pct", fontsize=8)
    ax.set_title("intensity histograms", fontsize=9)
    ax.legend(fontsize=5)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
