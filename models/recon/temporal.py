"""Put every view on one common cardiac-phase axis (ED = frame 0) before reconstruction.

Apical clips are not recorded simultaneously, so frame k of A4C and frame k of A2C are not
the same instant. Two cases:

* every view already has the same number of frames and no other count is asked for (a
  bundle written on a common axis, like the synthetic cohort or ``echo4d ingest`` output):
  the frames are kept as they are, only rolled together so that frame 0 is ED (largest
  summed, per-view normalised cavity area) — the views' mutual alignment is trusted;
* otherwise :func:`models.phase.align_study` detects ED/ES per view from its area curve and
  resamples every view onto one phase axis (ED = 0, ES at the study's systolic fraction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.study import Study


@dataclass(frozen=True)
class PhaseAligned:
    """Masks per view on the common axis, (T, H_v, W_v) each; times (T,) s from ED; source frames."""

    masks: dict[str, NDArray[np.uint8]]
    frame_times_s: NDArray[np.float64]
    source_frames: dict[str, list[int]]
    warnings: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return int(self.frame_times_s.shape[0])


def align_views(study: Study, n_frames: int | None = None) -> PhaseAligned:
    """Every view of ``study`` on one phase axis with ED at frame 0 (``n_frames``: resample to N)."""
    names = study.view_names
    lengths = {study.views[v].n_frames for v in names}
    if len(lengths) == 1 and (n_frames is None or n_frames == next(iter(lengths))):
        t = next(iter(lengths))
        areas = [study.views[v].masks.reshape(t, -1).sum(1).astype(np.float64) for v in names]
        ed = int(np.argmax(sum(a / a.max() for a in areas)))
        order = [(ed + j) % t for j in range(t)]
        fps = float(np.mean([study.views[v].fps for v in names]))
        return PhaseAligned({v: study.views[v].masks[order] for v in names}, np.arange(t) / fps,
                            {v: order for v in names})
    from models.phase import align_study

    aligned = align_study(study, n_frames)
    phase: dict[str, Any] = aligned.meta.get("phase", {})
    per_view = phase.get("views", {})
    t = aligned.views[names[0]].n_frames
    fps = aligned.views[names[0]].fps
    warnings = ["views were put on one cardiac-phase axis (ED/ES from each view's cavity area curve)"]
    warnings.extend(str(w) for w in phase.get("warnings", []))
    sources = {v: [int(i) for i in per_view.get(v, {}).get("source_frames", list(range(t)))] for v in names}
    return PhaseAligned({v: aligned.views[v].masks for v in names}, np.arange(t) / fps, sources, warnings)
