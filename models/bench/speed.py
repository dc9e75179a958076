"""Speed benchmark (``echo4d bench speed``): profiles on the same study, in one process.

Per run: seconds per stage (encode, anchor, motion, mesh), total, and the process's peak
resident memory after the run (``resource.getrusage``; a high-water mark, so it can only grow
from one run to the next — runs are ordered cheapest first). The 3D runs reconstruct the ED
frame only. The ratio compares the paper profile's total with the default profile's.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from models.recon.pipeline import ReconConfig, reconstruct_study
from models.recon.shape_model import ReconPrior
from models.study import Study

if TYPE_CHECKING:
    from models.prior.model import ShapePrior

STAGES = ("encode", "anchor", "motion", "mesh", "total")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    rss = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


def run_speed(study: Study, prior: ShapePrior | ReconPrior, device: torch.device,
              profiles: Sequence[str] = ("default", "paper"), include_3d: bool = True, seed: int = 0,
              progress: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Reconstruct ``study`` with every profile (3D then 4D each); returns ``{"runs", "ratios", ...}``."""
    runs: list[dict[str, Any]] = []
    modes = (("3d", True), ("4d", False)) if include_3d else (("4d", False),)
    for profile in profiles:
        for mode, ed_only in modes:
            cfg = ReconConfig.from_profile(profile, seed=seed, ed_only=ed_only)
            start = time.perf_counter()
            result = reconstruct_study(study, prior, cfg, device)
            wall = time.perf_counter() - start
            run = {"profile": profile, "mode": mode, "wall_s": wall, "peak_rss_mb": peak_rss_mb(),
                   "n_frames": result.n_frames, "n_views": len(result.view_fits),
                   "anchor_steps": result.extras.get("anchor_steps"), "motion_steps": result.extras.get("motion_steps"),
                   "edv_ml": result.edv_ml, "esv_ml": result.esv_ml, "ef_percent": result.ef_percent,
                   "seen_dice_mean": sum(f.dice_mean for f in result.view_fits) / max(len(result.view_fits), 1),
                   **{f"{k}_s": float(result.timings_s.get(k, 0.0)) for k in STAGES}}
            runs.append(run)
            if progress is not None:
                progress(f"{profile}/{mode}", run)
    ratios: dict[str, float] = {}
    for mode, _ in modes:
        totals = {r["profile"]: r["total_s"] for r in runs if r["mode"] == mode}
        if "paper" in totals and "default" in totals and totals["default"] > 0:
            ratios[f"paper_over_default_{mode}"] = totals["paper"] / totals["default"]
    return {"runs": runs, "ratios": ratios, "threads": torch.get_num_threads(), "device": str(device),
            "views": study.view_names, "frames_in": {v: study.views[v].n_frames for v in study.view_names}}


def speed_markdown(doc: dict[str, Any]) -> str:
    """Markdown table of a speed document."""
    lines = [f"device {doc['device']}, {doc['threads']} torch thread(s), views {'+'.join(doc['views'])}", "",
             "| profile | mode | frames | encode s | anchor s | motion s | mesh s | total s | anchor/motion steps "
             "| peak RSS MiB | EF % |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["runs"]:
        lines.append(f"| {r['profile']} | {r['mode']} | {r['n_frames']} | {r['encode_s']:.1f} | {r['anchor_s']:.1f} "
                     f"| {r['motion_s']:.1f} | {r['mesh_s']:.1f} | {r['total_s']:.1f} | {r['anchor_steps']}/"
                     f"{r['motion_steps']} | {r['peak_rss_mb']:.0f} | {_ef(r)} |")
    for k, v in doc["ratios"].items():
        lines.append(f"\n{k.replace('_', ' ')}: {v:.1f}×")
    return "\n".join(lines) + "\n"


def _ef(run: dict[str, Any]) -> str:
    """EF of a 4D run; a 3D (ED-only) run has no ejection fraction."""
    return f"{run['ef_percent']:.1f}" if run["n_frames"] > 1 else "—"


def write_speed(doc: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``speed.json`` and ``speed.md`` into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "speed.json", out_dir / "speed.md"
    js.write_text(json.dumps(doc, indent=1) + "\n")
    md.write_text(speed_markdown(doc))
    return js, md
