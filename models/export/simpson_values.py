"""Simpson's biplane volumes (method of disks, A4C + A2C) of the observed masks, reported beside the 3D ones.

The clinical comparison a reader expects next to a 3D volume: EDV and ESV by the biplane method of disks
(``models.bench.simpson``, ASE/EACVI 2015) on the A4C and A2C masks the reconstruction was fitted to, at
each view's own ED and ES frames (the source frames of the reconstruction's ED/ES, ``ViewFit.ed_frame``/
``es_frame``). Absent (None) without both views, for a single-phase study, or when a mask cannot be measured.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from models.recon.result import ReconResult
from models.study import Study

METHOD: Final[str] = "biplane method of disks (A4C + A2C), 20 disks"


def simpson_biplane(result: ReconResult, study: Study) -> dict[str, Any] | None:
    """``{"method", "n_disks", "edv_ml", "esv_ml", "ef_percent", "ed_source_frames", "es_source_frames"}``."""
    from models.bench.simpson import DEFAULT_N_DISKS, ejection_fraction_percent, simpson_biplane_volume_ml

    fits = {f.view: f for f in result.view_fits}
    if not {"A4C", "A2C"} <= fits.keys() or not {"A4C", "A2C"} <= study.views.keys():
        return None
    if int(result.ed_frame) == int(result.es_frame):
        return None  # one phase (a static or ED-only study): no ESV, no EF
    a4c, a2c = study.views["A4C"], study.views["A2C"]
    ed = {"A4C": int(fits["A4C"].ed_frame), "A2C": int(fits["A2C"].ed_frame)}
    es = {"A4C": int(fits["A4C"].es_frame), "A2C": int(fits["A2C"].es_frame)}
    try:
        edv = simpson_biplane_volume_ml(a4c.masks[ed["A4C"]], a4c.pixel_spacing_mm, a2c.masks[ed["A2C"]],
                                        a2c.pixel_spacing_mm, DEFAULT_N_DISKS)
        esv = simpson_biplane_volume_ml(a4c.masks[es["A4C"]], a4c.pixel_spacing_mm, a2c.masks[es["A2C"]],
                                        a2c.pixel_spacing_mm, DEFAULT_N_DISKS)
    except (ValueError, IndexError):
        return None
    ef = ejection_fraction_percent(edv, esv)
    if not all(np.isfinite(v) and v >= 0 for v in (edv, esv)) or not np.isfinite(ef):
        return None
    return {"method": METHOD, "n_disks": DEFAULT_N_DISKS, "edv_ml": round(float(edv), 2),
            "esv_ml": round(float(esv), 2), "ef_percent": round(float(ef), 2), "ed_source_frames": ed,
            "es_source_frames": es}
