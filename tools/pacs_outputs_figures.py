"""Figures for docs/results.md ("PACS outputs"): build the DICOM results and mesh.glb of the real 4D LV
(biv-me patient 1, ../shared/data/real-lv-4d) and time them, size them and run the validators on them.

    .venv/bin/python tools/pacs_outputs_figures.py [PATH/TO/bivme_patient1_lv_endo.npz]

The mesh is the MRI-fitted cavity itself (not a reconstruction): what is measured is the export.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from models.export.dicom_common import SourceInstance, target_from_sources
from models.export.dicom_writer import write_dicom_outputs
from models.export.glb import write_glb
from models.export.preview import render_preview
from models.geometry.canonical import load_real_lv_4d
from models.recon.result import ReconResult

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT.parent / "shared/data/real-lv-4d/biv-me-patient1/bivme_patient1_lv_endo.npz"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    d = load_real_lv_4d(path)
    result = ReconResult(vertices=d["vertices"], faces=d["faces"], frame_times_s=d["frame_times_ms"] / 1000.0,
                         volumes_ml=d["volumes_ml"], ed_frame=int(d["ed_frame"]), es_frame=int(d["es_frame"]),
                         view_fits=[], timings_s={}, model_info={"profile": "default"})
    out = Path(tempfile.mkdtemp(prefix="echo4d-pacs-"))
    figures: dict[str, object] = {"frames": result.n_frames, "vertices": int(result.vertices.shape[1]),
                                  "faces": len(result.faces)}
    start = time.perf_counter()
    glb = write_glb(result.vertices, result.faces, result.frame_times_s, out / "mesh.glb")
    figures["glb_s"] = round(time.perf_counter() - start, 3)
    preview = render_preview(result, out / "preview.png")
    source = [SourceInstance("1.2.3", "1.2.3.1", "1.2.840.10008.5.1.4.1.1.3.1", "1.2.3.1.1")]
    start = time.perf_counter()
    files = write_dicom_outputs(result, out, target_from_sources(source, "figures"), datetime.now(UTC), preview)
    figures["dicom_s"] = round(time.perf_counter() - start, 3)
    figures["bytes"] = {name: p.stat().st_size for name, p in files.items()} | {"mesh.glb": glb.stat().st_size}
    node = shutil.which("node")
    if node:
        run = subprocess.run([node, str(ROOT / "tools/gltf-validator/validate.js"), str(glb)], capture_output=True,
                             text=True, check=True)
        issues = json.loads(run.stdout)["issues"]
        figures["gltf_validator"] = {k: issues[k] for k in ("numErrors", "numWarnings", "numInfos", "numHints")}
    tool = shutil.which("dciodvfy")
    if tool:
        counts = {}
        for name, p in files.items():
            text = subprocess.run([tool, "-new", str(p)], capture_output=True, text=True, check=False).stderr
            lines = text.splitlines()
            counts[name] = {"errors": sum(line.startswith("Error") for line in lines),
                            "warnings": sum(line.startswith("Warning") for line in lines)}
        figures["dciodvfy"] = counts
    figures["edv_esv_ef"] = [round(result.edv_ml, 1), round(result.esv_ml, 1), round(result.ef_percent, 1)]
    figures["glb_extent_m"] = np.ptp(result.vertices[0] * 1e-3, axis=0).round(4).tolist()
    sys.stdout.write(json.dumps(figures, indent=1) + "\n")
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
