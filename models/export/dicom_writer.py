"""Write the DICOM results of one reconstruction into ``out_dir/dicom/`` (what goes back to the PACS).

================  =====================================  ============================================
file              SOP class                              content
================  =====================================  ============================================
sr.dcm            Comprehensive 3D SR (TID 1500)          EDV, ESV, SV, EF and the method
mesh-stl.dcm      Encapsulated STL (modality M3D)         the ED mesh, mm
cine-sc.dcm       Multi-frame True Color SC               the rendered beating mesh, one frame a frame
preview-sc.dcm    Multi-frame True Color SC (1 frame)     preview.png
================  =====================================  ============================================

All four sit in ``target``'s study (the source echo's, or a new one for non-DICOM input; see
:mod:`models.export.dicom_common`), each kind in a series of its own, and carry no patient value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from models.export.atomic import atomic_write_bytes
from models.export.dicom_common import DicomTarget, dataset_bytes
from models.export.dicom_sc import build_true_color_sc, mesh_cine_frames
from models.export.dicom_sr import build_volume_sr
from models.export.dicom_stl import build_encapsulated_stl
from models.recon.result import ReconResult

DICOM_DIR: Final = "dicom"
SR_NAME: Final = "sr.dcm"
STL_NAME: Final = "mesh-stl.dcm"
CINE_NAME: Final = "cine-sc.dcm"
PREVIEW_SC_NAME: Final = "preview-sc.dcm"


def write_dicom_outputs(result: ReconResult, out_dir: Path, target: DicomTarget, now: datetime,
                        preview_png: Path | None = None,
                        simpson: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Write the DICOM results (preview-sc.dcm only when ``preview_png`` is given); returns
    {``dicom/<name>``: absolute path}. ``now``: the content date/time the objects carry. ``simpson``: the
    report's ``simpson_biplane`` values, written in the SR beside the 3D volumes."""
    from PIL import Image

    folder = Path(out_dir).resolve() / DICOM_DIR
    folder.mkdir(parents=True, exist_ok=True)
    ed = int(result.ed_frame)
    stl = build_encapsulated_stl(result.vertices[ed], result.faces, target, now)
    sr = build_volume_sr(result, target, now, extra_evidence=[stl], simpson=simpson)
    frames, frame_time_ms = mesh_cine_frames(result)
    objects = {
        SR_NAME: sr,
        STL_NAME: stl,
        CINE_NAME: build_true_color_sc(frames, target, now, "sc-cine", 1, frame_time_ms,
                                       "Rendered Echo4D LV mesh, one frame per reconstructed frame"),
    }
    if preview_png is not None:
        with Image.open(preview_png) as img:
            rgb = np.asarray(img.convert("RGB"))[None]
        objects[PREVIEW_SC_NAME] = build_true_color_sc(rgb, target, now, "sc-preview", 2, None,
                                                       "Echo4D preview: ED/ES meshes and the volume curve")
    return {f"{DICOM_DIR}/{name}": atomic_write_bytes(folder / name, dataset_bytes(ds))
            for name, ds in objects.items()}
