"""PHI: a DICOM cine with planted (fake) patient values, uploaded under a file name holding the patient's name,
goes through the API and the worker to a mesh.

Searched afterwards for every planted value (and distinctive pieces of them): every log line of the API and
the worker (stderr and the logging records), the Prometheus text, every object key in the store, every
artifact downloaded over HTTP, the job resources (one, list), and the job table's idempotency keys. The
DICOMweb STOW-RS route is checked the same way, except for its response, where the standard requires the
instance UIDs. The DICOM results (sr.dcm, mesh-stl.dcm, cine/preview-sc.dcm) may carry the source study's
UIDs, which place them in that study, and nothing else of the patient.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dicom_kit import cardiac_masks, dicom_bytes, read_dicom
from reliability_kit import FAKE_PATIENT, find_needles, phi_needles, uid_running_over_patient
from service_testkit import ApiHarness, embedded_settings, worker_context

from worker.runner import Outcome, run_job

NEEDLES = phi_needles()
UIDS = [FAKE_PATIENT["StudyInstanceUID"], FAKE_PATIENT["SeriesInstanceUID"]]
PATIENT_ONLY = [n for n in NEEDLES if not any(n in uid for uid in UIDS)]  # needles that are no piece of a UID


@pytest.fixture()
def phi_api(api_factory: Callable[..., ApiHarness], tmp_data_dir: Path, smoke_prior: Path,
            one_torch_thread: None) -> ApiHarness:
    return api_factory(embedded_settings(tmp_data_dir, prior_checkpoint=smoke_prior, device="cpu", log_level="DEBUG"))


def _everything_the_service_exposed(api: ApiHarness, job_id: str) -> dict[str, bytes]:
    """Name → bytes of every output, resource, metric and key the service produced for the job."""
    auth = api.auth()
    seen: dict[str, bytes] = {}
    job = api.client.get(f"/v1/jobs/{job_id}", headers=auth)
    seen["job resource"] = job.content
    seen["job list"] = api.client.get("/v1/jobs", headers=auth).content
    for name in job.json()["artifacts"]:
        body = api.client.get(f"/v1/jobs/{job_id}/artifacts/{name}", headers=auth).content
        seen[f"artifact {name}"] = body
        if name == "meshes":
            with zipfile.ZipFile(io.BytesIO(body)) as zf:
                for member in zf.namelist():
                    seen[f"artifact meshes/{member}"] = member.encode() + zf.read(member)
    seen["metrics"] = api.client.get("/metrics").content
    store = api.services.store
    seen["object keys"] = "\n".join(store.list_keys("inputs/") + store.list_keys("outputs/")).encode()
    from sqlalchemy import select

    from jobcore.db.models import Job

    with api.services.sessions() as s:
        rows = s.execute(select(Job.idempotency_key, Job.error_detail, Job.summary, Job.input_keys)).all()
    seen["job table"] = json.dumps([list(map(str, r)) for r in rows]).encode()
    return seen


@pytest.mark.slow
def test_planted_patient_values_appear_in_no_log_metric_key_or_output(phi_api: ApiHarness,
                                                                      capfd: pytest.CaptureFixture[str],
                                                                      caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    raw = dicom_bytes(cardiac_masks(), view="A4C", patient=FAKE_PATIENT)
    assert len(find_needles(raw, NEEDLES)) >= 8  # the input really carries them
    r = phi_api.client.post("/v1/studies", headers=phi_api.auth(), data={"profile": "smoke"},
                            files=[("files", ("Quixote_Dulcinea_RelPHI4417_A4C.dcm", raw, "application/dicom"))])
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert run_job(worker_context(phi_api.services), job_id) is Outcome.SUCCEEDED, \
        phi_api.services.jobs.get(job_id).error_detail  # type: ignore[union-attr]
    seen = _everything_the_service_exposed(phi_api, job_id)
    assert {"artifact report.json", "artifact mesh.glb", "artifact ed.ply", "artifact preview.png"} <= set(seen)
    out, err = capfd.readouterr()
    seen["stderr log lines"] = (out + err).encode()
    seen["log records"] = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records).encode()
    assert b"job_finished" in seen["stderr log lines"]  # the worker's log was captured
    # The DICOM results go back into the source study, so they must carry its UIDs (and the SR and STL name
    # the source instances by theirs); no other planted value.
    dicom = {where: blob for where, blob in seen.items() if where.endswith(".dcm")}
    assert len(dicom) == 4
    sr = read_dicom(seen["artifact sr.dcm"])
    assert sr.StudyInstanceUID == FAKE_PATIENT["StudyInstanceUID"]
    assert (sr.PatientName, sr.PatientID, sr.PatientBirthDate, sr.AccessionNumber) == ("", "", "", "")
    leaks = {where: found for where, blob in seen.items()
             if (found := find_needles(blob, PATIENT_ONLY if where in dicom else NEEDLES))}
    assert leaks == {}
    print(f"FIGURE phi: {len(NEEDLES)} planted strings searched in {len(seen)} places "
          f"({sum(len(b) for b in seen.values()) / 1e6:.1f} MB), job succeeded, 0 found")


def _related(parts: list[bytes], boundary: str = "phiB0undary") -> tuple[bytes, str]:
    out = io.BytesIO()
    for raw in parts:
        out.write(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + raw + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f'multipart/related; type="application/dicom"; boundary={boundary}'


def test_stow_rs_keeps_patient_values_out_of_keys_logs_and_metrics(phi_api: ApiHarness,
                                                                   capfd: pytest.CaptureFixture[str],
                                                                   caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    body, ctype = _related([dicom_bytes(cardiac_masks(4), patient=FAKE_PATIENT)])
    r = phi_api.client.post("/v1/dicomweb/studies", content=body, headers={**phi_api.auth(), "Content-Type": ctype})
    assert r.status_code == 200, r.text
    job_url = r.json()["00081199"]["Value"][0]["00081190"]["Value"][0]
    job_id = job_url.rstrip("/").rsplit("/", 1)[-1]
    # the STOW-RS response may carry UIDs (the standard requires them), nothing else of the patient
    assert find_needles(r.content, PATIENT_ONLY) == []
    seen: dict[str, Any] = {
        "object keys": "\n".join(phi_api.services.store.list_keys("inputs/")),
        "metrics": phi_api.client.get("/metrics").text,
        "job resource": phi_api.client.get(f"/v1/jobs/{job_id}", headers=phi_api.auth()).text,
    }
    from sqlalchemy import select

    from jobcore.db.models import Job

    with phi_api.services.sessions() as s:
        seen["idempotency keys"] = "\n".join(str(k) for k in s.scalars(select(Job.idempotency_key)))
    out, err = capfd.readouterr()
    seen["stderr log lines"] = out + err
    seen["log records"] = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    leaks = {where: found for where, blob in seen.items() if (found := find_needles(blob, NEEDLES))}
    assert leaks == {}


def test_a_uid_running_over_the_patient_is_never_quoted(phi_api: ApiHarness, capfd: pytest.CaptureFixture[str],
                                                          caplog: pytest.LogCaptureFixture):
    """Issue #15 row 3: the SOPInstanceUID's length covers PatientName and PatientID. Before: pydicom's warning
    quoted the 'UID' (the patient's name and ID) in a log line and as a raw UserWarning on stderr, and the STOW-RS
    response echoed it. Through STOW-RS (API parse) and /v1/studies + the worker (worker parse)."""
    caplog.set_level(logging.DEBUG)
    crafted = uid_running_over_patient(dicom_bytes(cardiac_masks(4), patient=FAKE_PATIENT))
    body, ctype = _related([crafted])
    stow = phi_api.client.post("/v1/dicomweb/studies", content=body,
                               headers={**phi_api.auth(), "Content-Type": ctype})
    assert stow.status_code == 409, stow.text  # the instance is refused (0xC000), not stored
    r = phi_api.client.post("/v1/studies", headers=phi_api.auth(),  # the stretched UID hides the view: name it
                            data={"profile": "smoke", "manifest": json.dumps({"view": "A4C"})},
                            files=[("files", ("a.dcm", crafted, "application/dicom"))])
    assert r.status_code == 202, r.text
    run_job(worker_context(phi_api.services), r.json()["id"])
    out, err = capfd.readouterr()
    seen = {"STOW-RS response": stow.text, "stderr": out + err,
            "log records": "\n".join(f"{rec.getMessage()} {rec.args}" for rec in caplog.records)}
    assert "withheld" in seen["stderr"]  # pydicom did warn: the line is there, without its text
    leaks = {where: found for where, blob in seen.items() if (found := find_needles(blob, NEEDLES))}
    assert leaks == {}
