"""Write every output of one reconstruction into its study folder (what the service stores).

Layout of ``out_dir``::

    report.json          echo4d-report/1 (written last, lists the other files with sha256)
    mesh.glb             animated binary glTF (morph target per frame)
    meshes/meshes.pvd    ParaView time series of
    meshes/frame_XXX.vtp one PolyData per frame
    ed.ply, es.ply       the ED and ES meshes
    preview.png          ED/ES meshes and the volume curve
    views.json           each view's masks and fitted contour per frame (with the study; the web viewer reads it)

Every file is written atomically (temp file + ``os.replace``) and the report goes last, so a
folder with a ``report.json`` is complete and a crash never leaves a half-written artefact.
All meshes are in mm in the canonical LV frame, except mesh.glb: metres, glTF's unit.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any, Final

from models.export.atomic import atomic_write_bytes
from models.export.glb import check_sequence, write_glb
from models.export.ply import write_ply
from models.export.preview import render_preview
from models.export.report import build_report, dump_report_json, validate_report
from models.export.simpson_values import simpson_biplane
from models.export.viewer_data import VIEWS_NAME, build_view_data, dump_view_data
from models.export.vtk import PVD_NAME, write_vtp_series
from models.recon.result import ReconResult
from models.study import Study

REPORT_NAME: Final[str] = "report.json"
GLB_NAME: Final[str] = "mesh.glb"
MESHES_DIR: Final[str] = "meshes"
ED_PLY_NAME: Final[str] = "ed.ply"
ES_PLY_NAME: Final[str] = "es.ply"
PREVIEW_NAME: Final[str] = "preview.png"
EXPORT_TIMING_KEY: Final[str] = "export"


def write_outputs(result: ReconResult, out_dir: Path, study_info: dict[str, Any],
                  study: Study | None = None) -> dict[str, Path]:
    """Write all outputs of ``result`` into ``out_dir``; returns {relative posix path: absolute path}
    for every file written (``report.json``, ``mesh.glb``, ``meshes/meshes.pvd``,
    ``meshes/frame_XXX.vtp``..., ``ed.ply``, ``es.ply``, ``preview.png``; with the study also ``views.json``).

    With the ``study`` it was reconstructed from, the report carries the quality gate
    (``quality``; its level also goes into the GLB asset extras, the VTP field data and the
    preview) and the ingest warnings of ``study.meta["ingest"]``."""
    start = time.perf_counter()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    quality = None
    simpson = None
    ingest_warnings: list[str] = []
    if study is not None:
        from models.quality import assess_reconstruction

        simpson = simpson_biplane(result, study)
        quality = assess_reconstruction(study, result, None if simpson is None else simpson["ef_percent"])
        ingest_warnings = [str(w) for w in (study.meta.get("ingest") or {}).get("warnings", [])]
    report = build_report(result, study_info, quality, ingest_warnings)  # validates the result first
    if study is not None:
        report["simpson_biplane"] = simpson
    quality = report["quality"]
    headline = None if quality is None else {"level": quality["level"], "score": quality["score"]}
    verts, faces, times = check_sequence(result.vertices, result.faces, result.frame_times_s)

    files: dict[str, Path] = {}
    pvd = write_vtp_series(verts, faces, times, out / MESHES_DIR, headline)
    for vtp in sorted(p for p in pvd.parent.iterdir() if p.suffix == ".vtp"):
        files[f"{MESHES_DIR}/{vtp.name}"] = vtp
    files[f"{MESHES_DIR}/{PVD_NAME}"] = pvd
    files[GLB_NAME] = write_glb(verts, faces, times, out / GLB_NAME, headline)
    ed, es = int(result.ed_frame), int(result.es_frame)
    files[ED_PLY_NAME] = write_ply(verts[ed], faces, out / ED_PLY_NAME, comment=f"ED frame {ed}")
    files[ES_PLY_NAME] = write_ply(verts[es], faces, out / ES_PLY_NAME, comment=f"ES frame {es}")
    files[PREVIEW_NAME] = render_preview(result, out / PREVIEW_NAME, quality)
    if study is not None:
        files[VIEWS_NAME] = atomic_write_bytes(out / VIEWS_NAME, dump_view_data(build_view_data(result, study)))

    report["artifacts"] = [_artifact(rel, path) for rel, path in files.items()]
    report["timings_s"][EXPORT_TIMING_KEY] = time.perf_counter() - start
    validate_report(report)
    files[REPORT_NAME] = atomic_write_bytes(out / REPORT_NAME, dump_report_json(report))
    return files


def _artifact(rel: str, path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return {"path": rel, "bytes": size, "sha256": digest.hexdigest()}
