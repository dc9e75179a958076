"""The job pipeline: fetch inputs from the store → ingest → reconstruct → export → upload outputs.

Model code is imported lazily inside the functions (the API imports this package without
torch). The three model calls sit in small functions (:func:`ingest`, :func:`reconstruct`,
:func:`export`) so the integration with ``models/`` is in one visible place.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobcore.artifacts import ARTIFACTS
from jobcore.storage import ObjectStore, input_key, output_key
from models.errors import Echo4DError, ErrorCode, ModelError
from models.study import Study
from worker.control import JobControl
from worker.dicom_results import export_dicom
from worker.model_cache import ModelCache

if TYPE_CHECKING:  # the result type only: the reconstruction itself (torch) is imported inside reconstruct()
    from models.recon.result import ReconResult

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,120}$")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
REQUIRED_OUTPUTS = ("report.json", "mesh.glb")


@dataclass(frozen=True)
class PipelineResult:
    artifacts: dict[str, dict[str, Any]]
    summary: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)  # artifact name → local file (until workdir goes)


# ----------------------------------------------------------------------------- the model calls
def ingest(paths: list[Path], kind: str, manifest: dict[str, Any] | None, models: ModelCache) -> Study:
    """Inputs on disk → a validated :class:`Study` (study bundle zip, or anything models.ingest reads;
    B-mode views are segmented by the worker's segmenter, loaded once per process on first use)."""
    if kind == "bundle":
        from models.study import load_study

        return load_study(paths[0])
    from models.ingest import load_any

    study: Study = load_any(paths, manifest, segmenter=models.segmenter())
    return study


def reconstruct(study: Study, profile: str, models: ModelCache, progress: Callable[[str, float], None],
                should_stop: Callable[[], bool], steps: Callable[[str, int, int], None] | None = None) -> ReconResult:
    """Run the test-time reconstruction."""
    try:
        from models.recon.pipeline import ReconConfig, reconstruct_study
    except ImportError as exc:
        raise ModelError("the reconstruction pipeline is not installed on this worker",
                         code=ErrorCode.RECONSTRUCTION_FAILED) from exc
    config = ReconConfig.from_profile(profile)
    return reconstruct_study(study, models.prior(), config, models.device(), progress=progress,
                             should_stop=should_stop, steps=steps)


def export(result: ReconResult, out_dir: Path, study_info: dict[str, Any], study: Study) -> dict[str, Path]:
    """Write report.json (with the quality gate and the ingest warnings), mesh.glb, meshes/, ed.ply,
    es.ply, preview.png, views.json into ``out_dir``."""
    from models.export.writer import write_outputs

    files: dict[str, Path] = write_outputs(result, out_dir, study_info, study)
    return files


# ----------------------------------------------------------------------------- store I/O around them
def _restore_names(names: list[str], count: int) -> list[str]:
    """Original file names (basenames only, safe characters, unique) for the ingest code; else index names."""
    out: list[str] = []
    for i in range(count):
        raw = names[i] if i < len(names) else ""
        base = Path(str(raw).replace("\\", "/")).name
        out.append(base if _SAFE_NAME.match(base) and base not in out else "")
    return out


def fetch_inputs(store: ObjectStore, job_id: str, kind: str, keys: list[str],
                 dest: Path) -> tuple[list[Path], dict[str, Any] | None]:
    """Download a job's inputs; returns local paths (client file names restored) and the manifest."""
    dest.mkdir(parents=True, exist_ok=True)
    if kind == "bundle":
        path = dest / "study.zip"
        store.download(keys[0], path)
        return [path], None
    sidecar: dict[str, Any] = {}
    for name in ("names.json", "manifest.json"):
        key = input_key(job_id, name)
        if store.stat(key) is not None:
            store.download(key, dest / f".{name}")
            sidecar[name] = json.loads((dest / f".{name}").read_text())
    names = _restore_names(list(sidecar.get("names.json", [])), len(keys))
    paths = []
    for key, name in zip(keys, names, strict=True):
        local = dest / (name or key.rsplit("/", 1)[-1])
        store.download(key, local)
        paths.append(local)
    return paths, sidecar.get("manifest.json")


def package_outputs(out_dir: Path, files: dict[str, Path]) -> dict[str, Path]:
    """Public artifact name → local file; ``meshes`` becomes one byte-reproducible zip of the .pvd + .vtp."""
    found: dict[str, Path] = {}
    for name, (object_name, _) in ARTIFACTS.items():
        if name == "meshes":
            continue
        candidate = files.get(name) or out_dir / object_name
        if candidate.is_file():
            found[name] = candidate
    mesh_dir = out_dir / "meshes"
    if mesh_dir.is_dir():
        zip_path = out_dir / "meshes.zip"
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
            for member in sorted(p for p in mesh_dir.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(member.relative_to(out_dir).as_posix(), date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, member.read_bytes())
        found["meshes"] = zip_path
    missing = [n for n in REQUIRED_OUTPUTS if n not in found]
    if missing:
        raise ModelError(f"the exporter did not write {', '.join(missing)}", code=ErrorCode.RECONSTRUCTION_FAILED)
    return found


def upload_outputs(store: ObjectStore, job_id: str, files: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Upload to ``outputs/{job_id}/{name}`` (overwrites: a re-run leaves one copy, never two)."""
    artifacts: dict[str, dict[str, Any]] = {}
    for name, path in sorted(files.items()):
        object_name, content_type = ARTIFACTS[name]
        info = store.put_file(output_key(job_id, object_name), path, content_type)
        artifacts[name] = {"key": info.key, "size": info.size, "etag": info.etag, "content_type": content_type}
    return artifacts


def summarize(result: ReconResult, study: Study, report: dict[str, Any]) -> dict[str, Any]:
    """Headline numbers, warnings and the quality level (with its reasons) for the job resource (no patient
    values); ``report`` is the report.json document just written."""
    def num(x: Any) -> float | None:
        v = float(x)
        return round(v, 3) if math.isfinite(v) else None

    quality = report.get("quality") or {}
    return {"edv_ml": num(result.edv_ml), "esv_ml": num(result.esv_ml), "sv_ml": num(result.sv_ml),
            "ef_percent": num(result.ef_percent), "n_frames": int(result.n_frames), "views": study.view_names,
            "warnings": list(report.get("warnings", []))[:20],
            "quality": {k: quality[k] for k in ("level", "score", "reasons") if k in quality} or None}


def run_pipeline(store: ObjectStore, models: ModelCache, control: JobControl, workdir: Path) -> PipelineResult:
    """All stages of one claimed job; stops at stage boundaries when cancelled or out of time."""
    claim = control.claim
    with control.stage("fetch"):
        paths, manifest = fetch_inputs(store, claim.job_id, claim.input_kind, claim.input_keys, workdir / "in")
    with control.stage("ingest"):
        study = ingest(paths, claim.input_kind, manifest, models)
    with control.stage("reconstruct"):
        try:
            result = reconstruct(study, claim.profile, models, control.progress, control.should_stop, control.steps)
        except Echo4DError as exc:
            if exc.code is ErrorCode.CANCELLED:  # should_stop() turned true inside: say why
                control.checkpoint()
            raise
    with control.stage("export"):
        info = {"job_id": claim.job_id, "profile": claim.profile, "input_kind": claim.input_kind,
                "views": study.view_names}
        out_dir = workdir / "out"
        control.export_step(0, 3)
        files = export(result, out_dir, info, study)
        control.export_step(1, 3)
        simpson = json.loads(files["report.json"].read_text()).get("simpson_biplane")
        files |= export_dicom(result, paths, out_dir, claim.job_id, files.get("preview.png"), simpson)
        control.export_step(2, 3)
        files = package_outputs(out_dir, files)
        control.export_step(3, 3)
        report = json.loads(files["report.json"].read_text())
    with control.stage("upload"):
        artifacts = upload_outputs(store, claim.job_id, files)
    return PipelineResult(artifacts, summarize(result, study, report), files)
