"""The built-in sample case of the web viewer: a synthetic study bundle (``static/sample-study.zip``).

A newcomer with no study yet presses "Run the sample case" on the job list page: the page fetches this zip
(plain static data: a synthetic heart, no patient) and POSTs it to ``/v1/studies`` with the user's key, like
any client. The zip is generated here from the synthetic cohort (the frozen-test-split case that
``echo4d demo`` reconstructs, noise-free masks) and committed, because the API image has no cohort code
(scipy); ``tests/service/test_service_viewer.py`` checks that the committed file is what this writes.
Regenerate with ``echo4d sample-study``.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Final

SAMPLE_SEED: Final[int] = 900_000  # cli.reconstruct.DEMO_SEED
SAMPLE_PATH: Final[Path] = Path(__file__).resolve().parent / "static" / "sample-study.zip"
_ZIP_TIME: Final[tuple[int, int, int, int, int, int]] = (1980, 1, 1, 0, 0, 0)


def sample_study_zip() -> bytes:
    """The sample study as a byte-reproducible ``echo4d-study/1`` zip (needs the worker extras: cohort code)."""
    import numpy as np

    from models.cohort.generate import CohortConfig, generate_case
    from models.cohort.writer import case_study
    from models.study import STUDY_FORMAT

    study = case_study(generate_case(SAMPLE_SEED, CohortConfig(sdf=False, preview=False)), noisy=False)
    buf = io.BytesIO()
    views = {}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in study.view_names:
            v = study.views[name]
            npy = io.BytesIO()
            np.save(npy, np.ascontiguousarray(v.masks, dtype=np.uint8))
            _write(zf, f"{name}.npy", npy.getvalue())
            views[name] = {"masks": f"{name}.npy", "pixel_spacing_mm": [float(s) for s in v.pixel_spacing_mm],
                           "fps": float(v.fps)}
        doc = {"format": STUDY_FORMAT, "views": views, "sample": f"synthetic cohort case {SAMPLE_SEED}"}
        _write(zf, "study.json", (json.dumps(doc, indent=2) + "\n").encode())
    return buf.getvalue()


def _write(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data, compresslevel=9)

