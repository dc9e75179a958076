"""``report.json``: the versioned, validated summary of one reconstruction (``echo4d-report/1``).

One source of truth: the pydantic models below. The JSON Schema shipped beside this module
(``report.schema.json``, draft 2020-12) is generated from them by :func:`report_json_schema`;
a test checks that the shipped file equals the generated one. Documented in docs/report-schema.md.

JSON never holds NaN or infinity: a non-finite number is written as ``null`` and explained in
``warnings``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from models.errors import ErrorCode, ModelError
from models.geometry.mesh import Mesh, is_watertight, mesh_volume_ml
from models.recon.result import ReconResult, ViewFit

SCHEMA_ID: Final[str] = "echo4d-report/1"
SCHEMA_PATH: Final[Path] = Path(__file__).with_name("report.schema.json")
JSON_SCHEMA_DIALECT: Final[str] = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_URI: Final[str] = "urn:echo4d:schema:echo4d-report:1"
VOLUME_MISMATCH_TOLERANCE: Final[float] = 0.01
"""Relative difference between a reported volume and its mesh's volume that earns a warning."""
MAX_EXTRAS_LIST: Final[int] = 64
"""Largest numpy array (elements) of ``ReconResult.extras`` copied into the report."""
MAX_EXTRAS_CHARS: Final[int] = 4096
"""Largest JSON size of one ``ReconResult.extras`` entry copied into the report."""

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0.0)]
Vector3 = Annotated[list[float], Field(min_length=3, max_length=3)]


class ReportConsistencyError(ValueError):
    """A cross-field rule of the report is broken; ``field`` names the entry at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)


class PoseReport(_Strict):
    """A fitted probe pose: in-plane point p (mm) → canonical point ``scale · rotation · p + translation_mm``."""

    rotation: Annotated[list[Vector3], Field(min_length=3, max_length=3, description="3x3, row-major")]
    translation_mm: Vector3
    scale: Annotated[float, Field(gt=0.0)]


class ViewReport(_Strict):
    """How well the reconstruction explains one observed view (rendered vs observed masks)."""

    view: Literal["A4C", "A2C", "A3C"]
    dice_ed: Fraction | None = Field(description="Dice at the ED frame; null if not finite")
    iou_ed: Fraction | None
    dice_mean: Fraction | None = Field(description="Dice averaged over all frames")
    iou_mean: Fraction | None
    pose: PoseReport
    ed_frame: NonNegativeInt = Field(description="ED frame detected in this view's sequence")
    es_frame: NonNegativeInt = Field(description="ES frame detected in this view's sequence")


class MeshInfo(_Strict):
    """The shared topology of every frame's mesh."""

    n_vertices: NonNegativeInt
    n_faces: NonNegativeInt
    watertight: bool = Field(description="Closed, manifold and consistently wound (checked on frame 0)")


class ModelInfo(BaseModel):
    """Model and code versions. ``code_version`` is always present; the reconstruction adds
    whatever identifies its prior (checkpoint name, sha256, profile, ...)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    code_version: str


class Artifact(_Strict):
    """One file written beside the report (path relative to the study output folder)."""

    path: str
    bytes: NonNegativeInt
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Units(_Strict):
    """Units of every number in the report and every mesh file."""

    length: Literal["mm"] = "mm"
    volume: Literal["mL"] = "mL"
    time: Literal["s"] = "s"
    ejection_fraction: Literal["%"] = "%"
    coordinate_frame: Literal["echo4d-canonical-lv"] = Field(
        "echo4d-canonical-lv",
        description="origin at the endocardial apex, +z apex to mitral centre, +x lateral in A4C",
    )


class ViewQuality(_Strict):
    """Quality signals of one view (see docs/report-schema.md for their definitions and limits)."""

    mask_source: Literal["segmenter", "masks supplied"]
    segmentation_confidence: Fraction | None = Field(
        description="Mean |2p-1| over the segmenter's candidate region (p > 0.1); null when masks were supplied")
    area_roughness: NonNegativeFloat | None = Field(
        description="max |A_t - (A_t-1 + A_t+1)/2| / median(A) of the input masks' area curve")
    max_area_jump: NonNegativeFloat | None = Field(description="max |A_t+1 - A_t| / median(A)")
    area_range_cm2: Annotated[list[NonNegativeFloat], Field(min_length=2, max_length=2)]
    fractional_area_change: Fraction = Field(description="(max - min) / max of the area curve")
    length_ed_mm: NonNegativeFloat = Field(description="LV long-axis length at the largest-area frame")
    long_axis_change: Fraction | None = Field(
        None, description="1 - shortest / longest long-axis length over the frames (a real LV shortens 10-20 %)")
    fit_dice_ed: Fraction | None
    fit_dice_mean: Fraction | None
    foreshortening_mm: NonNegativeFloat | None = Field(description="null where the fit did not estimate it")
    segmentation_fac_spread: NonNegativeFloat | None = Field(
        None, description="Largest change of the fractional area change when the clip is re-segmented at another "
                          "gain or resolution; null when masks were supplied")


class Plausibility(_Strict):
    """Physiological plausibility of the volumes (null entries: not assessed, e.g. 3D only)."""

    assessed: bool
    ed_greater_than_es: bool | None
    ef_in_range: bool | None


class Agreement(_Strict):
    """Do the views describe one ventricle? (null with one view)"""

    fac_disagreement: NonNegativeFloat | None = Field(description="max |FAC_i - FAC_j| over view pairs")
    length_disagreement: NonNegativeFloat | None = Field(
        description="max |L_i - L_j| / mean(L) of the ED long-axis lengths over view pairs")
    simpson_ef_disagreement: NonNegativeFloat | None = Field(
        None, description="|EF - Simpson's biplane EF| (points) on the same masks; null without A4C + A2C or an EF")


class QualityReport(_Strict):
    """The quality gate: a level computed from measured signals with documented thresholds."""

    format: Literal["echo4d-quality/1"]
    level: Literal["good", "review", "unreliable"]
    score: NonNegativeFloat = Field(description="max badness over the checks: < 1 good, < 2 review, else unreliable")
    reasons: list[str]
    views: dict[str, ViewQuality]
    agreement: Agreement
    plausibility: Plausibility


class SimpsonBiplane(_Strict):
    """Simpson's biplane volumes of the observed A4C + A2C masks (the clinical comparison), beside the 3D ones."""

    method: str
    n_disks: Annotated[int, Field(ge=1)]
    edv_ml: NonNegativeFloat
    esv_ml: NonNegativeFloat
    ef_percent: float
    ed_source_frames: dict[str, NonNegativeInt] = Field(description="Frame of each view's clip measured at ED")
    es_source_frames: dict[str, NonNegativeInt] = Field(description="Frame of each view's clip measured at ES")


class Report(_Strict):
    """``report.json`` of one study, schema ``echo4d-report/1``."""

    schema_: Literal["echo4d-report/1"] = Field(alias="schema")
    n_frames: Annotated[int, Field(ge=1)]
    frame_times_s: list[float] = Field(description="Time of each frame from the first (ED) frame, s")
    volumes_ml: list[float | None] = Field(description="LV cavity volume of each frame's mesh, mL")
    edv_ml: float | None
    esv_ml: float | None
    sv_ml: float | None
    ef_percent: float | None
    ed_frame: NonNegativeInt
    es_frame: NonNegativeInt
    views: list[ViewReport]
    mesh: MeshInfo
    timings_s: dict[str, NonNegativeFloat] = Field(description="Wall-clock seconds per stage")
    model: ModelInfo
    study: dict[str, JsonValue] = Field(description="Non-identifying study facts from the caller")
    warnings: list[str]
    quality: QualityReport | None = Field(default=None, description="null when no study was given to the exporter")
    simpson_biplane: SimpsonBiplane | None = Field(
        default=None, description="Biplane method of disks on the A4C + A2C masks at ED and ES; null without "
                                  "both views, a study, or two phases")
    units: Units
    extras: dict[str, JsonValue] = Field(default_factory=dict)
    artifacts: list[Artifact] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Report:
        t = self.n_frames
        if len(self.frame_times_s) != t:
            raise ReportConsistencyError("frame_times_s", f"{len(self.frame_times_s)} entries for {t} frames")
        if len(self.volumes_ml) != t:
            raise ReportConsistencyError("volumes_ml", f"{len(self.volumes_ml)} entries for {t} frames")
        if any(b <= a for a, b in zip(self.frame_times_s, self.frame_times_s[1:], strict=False)):
            raise ReportConsistencyError("frame_times_s", "must be strictly increasing")
        for name in ("ed_frame", "es_frame"):
            if getattr(self, name) >= t:
                raise ReportConsistencyError(name, f"{getattr(self, name)} is out of range for {t} frames")
        names = [v.view for v in self.views]
        if len(set(names)) != len(names):
            raise ReportConsistencyError("views", "a view is listed twice")
        return self


def report_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :class:`Report`, generated from the pydantic models."""
    schema = Report.model_json_schema(by_alias=True)
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": SCHEMA_URI, **schema}


def write_report_schema(path: Path = SCHEMA_PATH) -> Path:
    """Regenerate the shipped ``report.schema.json`` (run after changing the models)."""
    from models.export.atomic import atomic_write_text

    return atomic_write_text(path, json.dumps(report_json_schema(), indent=2) + "\n")


def validate_report(doc: Mapping[str, Any]) -> Report:
    """Validate a report document; raise :class:`ModelError` (code ``validation_failed``) whose
    ``field`` names the first offending entry, e.g. ``views.0.dice_ed``."""
    bad = find_non_finite(doc)
    if bad is not None:
        raise ModelError("report holds a non-finite number", code=ErrorCode.VALIDATION_FAILED, field=bad)
    try:
        return Report.model_validate(dict(doc))
    except ValidationError as exc:
        first = exc.errors()[0]
        cause = (first.get("ctx") or {}).get("error")
        where = ".".join(str(p) for p in first["loc"]) or getattr(cause, "field", None) or "report"
        raise ModelError(
            f"report does not follow {SCHEMA_ID}: {first['msg']}", code=ErrorCode.VALIDATION_FAILED, field=where
        ) from None


def dump_report_json(doc: Mapping[str, Any]) -> bytes:
    """Serialise a report as UTF-8 JSON (indented, NaN refused)."""
    return (json.dumps(doc, indent=2, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")


def find_non_finite(value: Any, path: str = "") -> str | None:
    """Dotted path of the first NaN/infinite float inside nested dicts/lists, or ``None``."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "report")
    if isinstance(value, Mapping):
        for k, v in value.items():
            hit = find_non_finite(v, f"{path}.{k}" if path else str(k))
            if hit is not None:
                return hit
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            hit = find_non_finite(v, f"{path}.{i}" if path else str(i))
            if hit is not None:
                return hit
    return None


def build_report(result: ReconResult, study_info: dict[str, Any], quality: dict[str, Any] | None = None,
                 ingest_warnings: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The ``echo4d-report/1`` document (a JSON-ready dict, already validated) of ``result``.

    ``study_info`` holds non-identifying study facts (views used, fps, source format, study
    id assigned by the service, ...); it is copied into ``study`` after JSON sanitising.
    ``quality`` is the block of :func:`models.quality.assess_reconstruction`; ``ingest_warnings``
    come first in ``warnings`` (prefixed ``ingest:``).
    """
    verts = np.asarray(result.vertices, dtype=np.float64)
    faces = np.asarray(result.faces, dtype=np.int64)
    times = np.asarray(result.frame_times_s, dtype=np.float64).reshape(-1)
    vols = np.asarray(result.volumes_ml, dtype=np.float64).reshape(-1)
    if verts.ndim != 3 or verts.shape[2] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ModelError(f"result meshes must be (T, N, 3) and (F, 3), got {verts.shape} and {faces.shape}")
    t = verts.shape[0]
    if len(times) != t or len(vols) != t:
        raise ModelError(f"result has {t} meshes, {len(times)} frame times and {len(vols)} volumes")
    if not np.isfinite(times).all():
        raise ModelError("result frame times are not finite")

    warnings = [f"ingest: {w}" for w in ingest_warnings] + [str(w) for w in result.warnings]
    if quality is not None and quality["level"] != "good":
        warnings.append(f"quality gate: {quality['level']} ({len(quality['reasons'])} reason(s) in quality.reasons)")
    volumes = [_finite_or_none(v, f"volumes_ml[{i}]", warnings) for i, v in enumerate(vols.tolist())]
    _check_mesh_volumes(verts, faces, vols, warnings)
    watertight = is_watertight(Mesh(verts[0], faces)) if len(faces) else False
    if not watertight:
        warnings.append("the mesh is not watertight: volumes may be wrong")

    timings: dict[str, float] = {}
    for stage, secs in result.timings_s.items():
        if math.isfinite(secs) and secs >= 0:
            timings[str(stage)] = float(secs)
        else:
            warnings.append(f"timing of stage {stage!r} was not a non-negative number and is omitted")

    single = t == 1
    es_only = single and result.extras.get("single_phase") == "ES"
    if es_only:
        warnings.append("single frame (3D, ES only): edv_ml, sv_ml and ef_percent are not defined and written as "
                        "null; esv_ml is the frame's volume")
    elif single:
        warnings.append("single frame (3D, ED only): esv_ml, sv_ml and ef_percent are not defined and written as "
                        "null")
    model = _jsonable(dict(result.model_info), "model", warnings)
    model.setdefault("code_version", code_version())
    doc: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "n_frames": t,
        "frame_times_s": times.tolist(),
        "volumes_ml": volumes,
        "edv_ml": None if es_only else _finite_or_none(result.edv_ml, "edv_ml", warnings),
        "esv_ml": _finite_or_none(result.esv_ml, "esv_ml", warnings) if es_only or not single else None,
        "sv_ml": None if single else _finite_or_none(result.sv_ml, "sv_ml", warnings),
        "ef_percent": None if single else _finite_or_none(result.ef_percent, "ef_percent", warnings),
        "ed_frame": int(result.ed_frame),
        "es_frame": int(result.es_frame),
        "views": [_view_report(fit, warnings) for fit in result.view_fits],
        "mesh": {"n_vertices": int(verts.shape[1]), "n_faces": len(faces), "watertight": watertight},
        "timings_s": timings,
        "model": model,
        "study": _jsonable(dict(study_info), "study", warnings),
        "warnings": warnings,
        "quality": quality,
        "units": Units.model_validate({}).model_dump(),
        "extras": _report_extras(result.extras, warnings),
        "artifacts": [],
    }
    return validate_report(doc).model_dump(by_alias=True, mode="json")


def code_version() -> str:
    """Installed version of the ``echo4d`` distribution (``unknown`` when not installed)."""
    try:
        return metadata.version("echo4d")
    except metadata.PackageNotFoundError:
        return "unknown"


def _view_report(fit: ViewFit, warnings: list[str]) -> dict[str, Any]:
    def frac(value: float, name: str) -> float | None:
        v = _finite_or_none(value, f"views.{fit.view}.{name}", warnings)
        return None if v is None else min(1.0, max(0.0, v))

    return {
        "view": fit.view,
        "dice_ed": frac(fit.dice_ed, "dice_ed"),
        "iou_ed": frac(fit.iou_ed, "iou_ed"),
        "dice_mean": frac(fit.dice_mean, "dice_mean"),
        "iou_mean": frac(fit.iou_mean, "iou_mean"),
        "pose": {
            "rotation": fit.pose.rotation.tolist(),
            "translation_mm": fit.pose.translation.tolist(),
            "scale": float(fit.pose.scale),
        },
        "ed_frame": int(fit.ed_frame),
        "es_frame": int(fit.es_frame),
    }


def _check_mesh_volumes(
    verts: np.ndarray[Any, np.dtype[np.float64]],
    faces: np.ndarray[Any, np.dtype[np.int64]],
    vols: np.ndarray[Any, np.dtype[np.float64]],
    warnings: list[str],
) -> None:
    if not len(faces):
        return
    for i in range(len(verts)):
        mesh_ml = mesh_volume_ml(Mesh(verts[i], faces))
        if math.isfinite(vols[i]) and abs(mesh_ml - vols[i]) > VOLUME_MISMATCH_TOLERANCE * max(abs(mesh_ml), 1e-9):
            warnings.append(
                f"volumes_ml[{i}] = {vols[i]:.2f} differs from its mesh's volume {mesh_ml:.2f} by more than "
                f"{100 * VOLUME_MISMATCH_TOLERANCE:.0f}%"
            )


def _finite_or_none(value: float, name: str, warnings: list[str]) -> float | None:
    v = float(value)
    if math.isfinite(v):
        return v
    warnings.append(f"{name} was not a finite number and is written as null")
    return None


def _jsonable(value: Any, path: str, warnings: list[str]) -> Any:
    """A JSON-ready copy of ``value`` (numpy → Python, non-finite → null with a warning)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return _finite_or_none(value, path, warnings)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{path}.{k}", warnings) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{path}.{i}", warnings) for i, v in enumerate(value)]
    if isinstance(value, Path):
        return value.name
    warnings.append(f"{path} of type {type(value).__name__} is not JSON data and is written as its text")
    return str(value)


def _report_extras(extras: Mapping[str, Any], warnings: list[str]) -> dict[str, Any]:
    """The small, plain-data entries of ``ReconResult.extras``: an entry is copied when it holds
    only JSON-able data (numbers, strings, lists, dicts, numpy scalars/arrays) and serialises to at
    most MAX_EXTRAS_CHARS characters; meshes, latents and long loss histories stay out."""
    out: dict[str, Any] = {}
    for key, value in extras.items():
        if not _is_plain_data(value):
            continue
        local: list[str] = []
        clean = _jsonable(value, f"extras.{key}", local)
        if len(json.dumps(clean, allow_nan=False)) <= MAX_EXTRAS_CHARS:
            out[str(key)] = clean
            warnings.extend(local)
    return out


def _is_plain_data(value: Any, depth: int = 0) -> bool:
    if depth > 8:
        return False
    if value is None or isinstance(value, bool | int | float | str | np.generic):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "biuf" and value.size <= MAX_EXTRAS_LIST
    if isinstance(value, Mapping):
        return all(_is_plain_data(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_is_plain_data(v, depth + 1) for v in value)
    return False
