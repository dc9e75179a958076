"""The result of one reconstruction: what ``models.export`` writes and the worker stores.

Plain data only (numpy arrays, dataclasses), so the CLI, the worker, the exporters and the
benchmarks share it without touching torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.geometry.frames import ProbePose


@dataclass(frozen=True)
class ViewFit:
    """How well the reconstruction explains one observed view (ED and over all frames).

    ``foreshortening_mm``: how far the fitted imaging plane misses the true apex (mm, ≥ 0), as
    estimated by the probe fit; ``None`` where the reconstruction did not estimate it.
    """

    view: str
    dice_ed: float
    iou_ed: float
    dice_mean: float
    iou_mean: float
    pose: ProbePose
    ed_frame: int
    es_frame: int
    foreshortening_mm: float | None = None


@dataclass(frozen=True)
class ReconResult:
    """A 4D LV endocardial mesh sequence with one topology, and its volume curve.

    ``vertices`` (T, N, 3) mm in the canonical LV frame; ``faces`` (F, 3) shared by every
    frame; ``frame_times_s`` (T,) from ED; ``volumes_ml`` (T,) computed from the meshes.
    """

    vertices: NDArray[np.float64]
    faces: NDArray[np.int64]
    frame_times_s: NDArray[np.float64]
    volumes_ml: NDArray[np.float64]
    ed_frame: int
    es_frame: int
    view_fits: list[ViewFit]
    timings_s: dict[str, float]
    model_info: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def edv_ml(self) -> float:
        return float(self.volumes_ml[self.ed_frame])

    @property
    def esv_ml(self) -> float:
        return float(self.volumes_ml[self.es_frame])

    @property
    def sv_ml(self) -> float:
        return self.edv_ml - self.esv_ml

    @property
    def ef_percent(self) -> float:
        return 100.0 * self.sv_ml / self.edv_ml if self.edv_ml > 0 else float("nan")
