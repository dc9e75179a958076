"""DICOM results, read back with pydicom/highdicom (and dciodvfy where dicom3tools is installed): the SR's
measurements, codes, method and evidence; the STL's mesh; the Secondary Captures' frames; which study they
sit in and that they carry no patient value."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
import pytest
import trimesh
from dicom_kit import cardiac_masks, dicom_bytes
from pydicom import dcmread

from models.export.dicom_common import DicomTarget, SourceInstance, read_sources, target_from_sources
from models.export.dicom_sc import MF_TRUE_COLOR_SC_SOP_CLASS
from models.export.dicom_sr import LV_EDV, LV_EF, LV_ESV, METHOD_3D, STROKE_VOLUME, build_volume_sr
from models.export.dicom_stl import ENCAPSULATED_STL_SOP_CLASS, stl_bytes
from models.export.dicom_writer import CINE_NAME, DICOM_DIR, PREVIEW_SC_NAME, SR_NAME, STL_NAME, write_dicom_outputs
from models.export.preview import render_preview
from models.recon.result import ReconResult

NOW = datetime(2026, 12, 6, 9, 30, 0, tzinfo=UTC)
US_MF = "1.2.840.10008.5.1.4.1.1.3.1"
SOURCES = [SourceInstance("1.2.3.4", "1.2.3.4.1", US_MF, "1.2.3.4.1.1"),
           SourceInstance("1.2.3.4", "1.2.3.4.2", US_MF, "1.2.3.4.2.1")]
PATIENT_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                    "StudyDate", "StudyTime", "ReferringPhysicianName")


@dataclass
class Written:
    target: DicomTarget
    files: dict[str, Path]
    result: ReconResult

    def read(self, name: str) -> Any:
        return dcmread(self.files[f"{DICOM_DIR}/{name}"])


@pytest.fixture(params=["dicom input", "other input"])
def written(request: pytest.FixtureRequest, tmp_path: Path, beating_result: ReconResult) -> Written:
    sources = SOURCES if request.param == "dicom input" else []
    target = target_from_sources(sources, uid_seed="job-123")
    preview = render_preview(beating_result, tmp_path / "preview.png")
    return Written(target, write_dicom_outputs(beating_result, tmp_path, target, NOW, preview), beating_result)


def test_all_four_objects_sit_in_the_target_study_with_no_patient_value(written: Written) -> None:
    target, files = written.target, written.files
    assert sorted(files) == sorted(f"{DICOM_DIR}/{n}" for n in (SR_NAME, STL_NAME, CINE_NAME, PREVIEW_SC_NAME))
    datasets = [dcmread(p) for p in files.values()]
    assert {ds.StudyInstanceUID for ds in datasets} == {target.study_instance_uid}
    assert len({ds.SOPInstanceUID for ds in datasets}) == 4
    assert {ds.Modality for ds in datasets} == {"SR", "M3D", "OT"}
    for ds in datasets:
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        for keyword in PATIENT_KEYWORDS:
            assert keyword in ds and ds[keyword].value in (None, ""), keyword


def test_sr_holds_edv_esv_sv_ef_with_the_method_and_the_evidence(written: Written) -> None:
    result, target = written.result, written.target
    sr = hd.sr.srread(written.files[f"{DICOM_DIR}/{SR_NAME}"])
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    (group,) = sr.content.get_image_measurement_groups()
    values = {m.name.value: (m.value, m.unit.value, m.method.value if m.method else None)
              for m in group.get_measurements()}
    expected = {LV_EDV.value: (result.edv_ml, "ml"), LV_ESV.value: (result.esv_ml, "ml"),
                STROKE_VOLUME.value: (result.sv_ml, "ml"), LV_EF.value: (result.ef_percent, "%")}
    assert set(values) == set(expected)
    for code, (value, unit) in expected.items():
        got, got_unit, method = values[code]
        assert got == pytest.approx(value, abs=0.006) and got_unit == unit and method == METHOD_3D.value
    assert {c.CodingSchemeDesignator for c in sr.CodingSchemeIdentificationSequence} >= {"99ECHO4D"}
    evidence = {ref.ReferencedSOPInstanceUID for study in sr.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence for ref in series.ReferencedSOPSequence}
    stl = written.read(STL_NAME)
    assert evidence == {s.sop_instance_uid for s in target.sources} | {stl.SOPInstanceUID}
    assert "PertinentOtherEvidenceSequence" not in sr


def test_simpsons_biplane_values_sit_beside_ours_with_the_method_of_disks(tmp_path: Path,
                                                                            beating_result: ReconResult) -> None:
    simpson = {"method": "biplane method of disks (A4C + A2C), 20 disks", "n_disks": 20, "edv_ml": 55.12,
               "esv_ml": 31.4, "ef_percent": 43.03, "ed_source_frames": {"A4C": 0, "A2C": 0},
               "es_source_frames": {"A4C": 3, "A2C": 3}}
    target = target_from_sources(SOURCES, uid_seed="job-123")
    files = write_dicom_outputs(beating_result, tmp_path, target, NOW, None, simpson)
    sr = hd.sr.srread(files[f"{DICOM_DIR}/{SR_NAME}"])
    groups = sr.content.get_image_measurement_groups()
    assert len(groups) == 2
    ours, disks = groups
    assert all(m.method.value == METHOD_3D.value for m in ours.get_measurements())
    values = {m.name.value: (m.value, m.unit.value, m.method.value) for m in disks.get_measurements()}
    assert values == {LV_EDV.value: (55.12, "ml", "125207"), LV_ESV.value: (31.4, "ml", "125207"),
                      LV_EF.value: (43.03, "%", "125207")}
    assert disks.tracking_identifier == "Simpson biplane (method of disks)"
    assert disks.tracking_uid != ours.tracking_uid


def test_stl_is_the_ed_mesh_in_mm(written: Written) -> None:
    result = written.result
    ds = written.read(STL_NAME)
    assert ds.SOPClassUID == ENCAPSULATED_STL_SOP_CLASS and ds.Modality == "M3D"
    assert ds.MIMETypeOfEncapsulatedDocument == "model/stl"
    assert ds.MeasurementUnitsCodeSequence[0].CodeValue == "mm"
    raw = bytes(ds.EncapsulatedDocument)[: ds.EncapsulatedDocumentLength]
    mesh = trimesh.load(io.BytesIO(raw), file_type="stl")
    assert len(mesh.faces) == len(result.faces) and mesh.is_watertight
    assert mesh.volume / 1000.0 == pytest.approx(result.edv_ml, rel=1e-4)  # mm³ → ml
    np.testing.assert_allclose(mesh.bounds, [result.vertices[result.ed_frame].min(0),
                                             result.vertices[result.ed_frame].max(0)], atol=1e-4)


def test_secondary_captures_play_the_cycle_and_show_the_preview(written: Written, tmp_path: Path) -> None:
    result = written.result
    cine, preview = written.read(CINE_NAME), written.read(PREVIEW_SC_NAME)
    assert cine.SOPClassUID == preview.SOPClassUID == MF_TRUE_COLOR_SC_SOP_CLASS
    assert cine.SeriesInstanceUID == preview.SeriesInstanceUID
    frames = cine.pixel_array
    assert frames.shape[0] == result.n_frames and frames.shape[-1] == 3
    assert cine.FrameTime == pytest.approx(1000 * np.diff(result.frame_times_s).mean())
    lit = (frames.max(axis=-1) > 40).reshape(result.n_frames, -1).sum(axis=1)
    assert lit.min() > 0.05 * frames[0].shape[0] * frames[0].shape[1]  # the mesh is drawn in every frame
    assert lit[result.es_frame] < lit[result.ed_frame]  # and it contracts
    from PIL import Image

    with Image.open(tmp_path / "preview.png") as img:
        np.testing.assert_array_equal(preview.pixel_array, np.asarray(img.convert("RGB")))


def test_uids_are_reproducible_per_job_and_differ_between_jobs(tmp_path: Path, beating_result: ReconResult) -> None:
    def uids(seed: str, sub: str) -> list[str]:
        files = write_dicom_outputs(beating_result, tmp_path / sub, target_from_sources(SOURCES, seed), NOW)
        return [str(dcmread(p).SOPInstanceUID) for p in files.values()]

    assert uids("job-1", "a") == uids("job-1", "b")
    assert not set(uids("job-1", "a")) & set(uids("job-2", "c"))


def test_the_study_most_sources_belong_to_is_the_target() -> None:
    other = SourceInstance("9.9", "9.9.1", US_MF, "9.9.1.1")
    target = target_from_sources([other, *SOURCES, SOURCES[0]], "s")
    assert target.study_instance_uid == "1.2.3.4" and target.sources == tuple(SOURCES)
    new = target_from_sources([], "s")
    assert new.new_study and new.study_instance_uid == target_from_sources([], "s").study_instance_uid


def test_sources_are_read_from_files_folders_and_zips(tmp_path: Path) -> None:
    raws = [dicom_bytes(cardiac_masks(3), view=v) for v in ("A4C", "A2C")]
    (tmp_path / "a4c.dcm").write_bytes(raws[0])
    with zipfile.ZipFile(tmp_path / "more.zip", "w") as zf:
        zf.writestr("sub/a2c.dcm", raws[1])
    (tmp_path / "notes.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)  # not DICOM: skipped
    found = read_sources([tmp_path / "a4c.dcm", tmp_path / "more.zip", tmp_path / "notes.png"])
    expected = {str(dcmread(io.BytesIO(r)).SOPInstanceUID) for r in raws}
    assert {s.sop_instance_uid for s in found} == expected
    assert all(s.sop_class_uid == US_MF for s in found)


def test_non_finite_volumes_are_refused(result_factory: Any) -> None:
    r = result_factory()
    r.volumes_ml[r.ed_frame] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        build_volume_sr(r, target_from_sources(SOURCES, "s"), NOW)


def test_stl_refuses_bad_meshes() -> None:
    with pytest.raises(ValueError):
        stl_bytes(np.zeros((3, 3)), np.array([[0, 1, 3]]))


def test_dciodvfy_finds_no_error(written: Written) -> None:
    """dicom3tools' IOD verifier (``apt-get install dicom3tools``). Its only warnings are expected: the empty
    Type 2 patient/study values (no PHI; a DICOMDIR would want them) and Echo4D's private coding scheme."""
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.skip("dciodvfy is not installed (Debian package dicom3tools)")
    for path in written.files.values():
        run = subprocess.run([tool, "-new", str(path)], capture_output=True, text=True, timeout=60, check=False)
        lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("Error")]
        unexpected = [line for line in lines if line.startswith("Warning") and "DICOMDIR" not in line
                      and "99ECHO4D" not in line]
        assert errors == [] and unexpected == [], f"{path.name}: {errors + unexpected}"
