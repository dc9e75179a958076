"""DICOMweb STOW-RS: multipart/related parsing, one job per study, DICOM JSON response, no UIDs in keys or logs."""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from service_testkit import ApiHarness

from jobcore.db.jobs import JobError
from jobcore.db.models import JobStatus, utcnow
from service.api.dicomweb import RETRY_HEADER

US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"


def dicom_bytes(study_uid: str, sop_uid: str, patient: str = "DOE^JANE", view: str | None = "A4C",
                n_frames: int = 2) -> bytes:
    """A US multi-frame instance; ``view`` goes into SeriesDescription (None: no view in the header)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.StudyInstanceUID = US_MULTIFRAME, sop_uid, study_uid
    ds.SeriesInstanceUID = "1.2.3." + str(uuid.uuid4().int)[:20]
    ds.PatientName, ds.PatientID, ds.Modality = patient, "MRN-123456", "US"
    if view is not None:
        ds.SeriesDescription = view
    ds.PixelSpacing, ds.FrameTime = [0.5, 0.5], 40.0
    frames = np.zeros((n_frames, 16, 16), dtype=np.uint8)
    ds.NumberOfFrames, ds.Rows, ds.Columns = n_frames, 16, 16
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = frames.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def related_body(parts: list[tuple[str, bytes]], boundary: str = "b0undary") -> bytes:
    out = io.BytesIO()
    for ctype, raw in parts:
        out.write(f"--{boundary}\r\nContent-Type: {ctype}\r\n\r\n".encode())
        out.write(raw + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


CTYPE = 'multipart/related; type="application/dicom"; boundary=b0undary'


def _uid() -> str:
    return "2.25." + str(uuid.uuid4().int)


def test_two_studies_become_two_jobs(api: ApiHarness, capfd: pytest.CaptureFixture[str]):
    s1, s2 = _uid(), _uid()
    sops = [_uid() for _ in range(3)]
    body = related_body([("application/dicom", dicom_bytes(study, sop)) for study, sop in zip((s1, s1, s2), sops,
                                                                                             strict=True)])
    r = api.client.post("/v1/dicomweb/studies", content=body, headers={**api.auth(), "Content-Type": CTYPE})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/dicom+json"
    refs = r.json()["00081199"]["Value"]
    assert sorted(i["00081155"]["Value"][0] for i in refs) == sorted(sops)
    urls = {i["00081190"]["Value"][0] for i in refs}
    assert len(urls) == 2 and "00081190" not in r.json()  # no single RetrieveURL for two studies
    for url in urls:
        job = api.client.get(url, headers=api.auth()).json()
        assert job["status"] == "queued" and job["input_kind"] == "dicom"
    keys = api.services.store.list_keys("inputs/")
    assert len(keys) == 2 * 1 + 3  # names.json per job + one object per instance
    out = capfd.readouterr()
    for secret in (s1, s2, *sops, "DOE^JANE", "MRN-123456"):
        assert all(secret not in k for k in keys)
        assert secret not in out.err and secret not in out.out


def test_resending_the_same_instances_returns_the_same_job(api: ApiHarness):
    s = _uid()
    body = related_body([("application/dicom", dicom_bytes(s, _uid()))])
    first = api.client.post("/v1/dicomweb/studies", content=body, headers={**api.auth(), "Content-Type": CTYPE})
    again = api.client.post("/v1/dicomweb/studies", content=body, headers={**api.auth(), "Content-Type": CTYPE})
    assert first.status_code == again.status_code == 200
    assert first.headers["location"] == again.headers["location"]
    assert first.json()["00081190"] == again.json()["00081190"]


def test_partial_failure_is_202_with_failed_sop_sequence(api: ApiHarness):
    body = related_body([("application/dicom", dicom_bytes(_uid(), _uid())), ("application/dicom", b"not dicom"),
                         ("text/plain", b"hello")])
    r = api.client.post("/v1/dicomweb/studies", content=body, headers={**api.auth(), "Content-Type": CTYPE})
    assert r.status_code == 202
    failed = r.json()["00081198"]["Value"]
    assert [f["00081197"]["Value"][0] for f in failed] == [0xC000, 0xC000]


def test_all_failed_is_409_and_study_mismatch_is_reported(api: ApiHarness):
    target, other = _uid(), _uid()
    body = related_body([("application/dicom", dicom_bytes(other, _uid()))])
    r = api.client.post(f"/v1/dicomweb/studies/{target}", content=body, headers={**api.auth(), "Content-Type": CTYPE})
    assert r.status_code == 409
    assert r.json()["00081198"]["Value"][0]["00081197"]["Value"][0] == 0xA900
    assert api.client.get("/v1/jobs", headers=api.auth()).json()["items"] == []


@pytest.mark.parametrize("ctype", ["application/dicom", "multipart/related; boundary=x; type=\"image/png\"",
                                   "multipart/form-data; boundary=x"])
def test_wrong_media_type_is_415(api: ApiHarness, ctype: str):
    r = api.client.post("/v1/dicomweb/studies", content=b"--x--", headers={**api.auth(), "Content-Type": ctype})
    assert r.status_code == 415 and r.headers["content-type"] == "application/problem+json"


def test_truncated_body_is_a_problem(api: ApiHarness):
    body = related_body([("application/dicom", dicom_bytes(_uid(), _uid()))])[:-40]
    r = api.client.post("/v1/dicomweb/studies", content=body, headers={**api.auth(), "Content-Type": CTYPE})
    assert r.status_code in (409, 422)
    assert r.status_code != 500


def test_stow_needs_auth(api: ApiHarness):
    r = api.client.post("/v1/dicomweb/studies", content=b"", headers={"Content-Type": CTYPE})
    assert r.status_code == 401


@pytest.mark.parametrize("base", [None, "https://pacs-gw.example.org/echo4d"])
def test_retrieve_url_is_absolute(api_factory, tmp_data_dir, base: str | None):
    """Issue #15: RetrieveURL was relative (/v1/jobs/...); it is absolute, from the request or the setting."""
    from service_testkit import embedded_settings

    h = api_factory(embedded_settings(tmp_data_dir, public_base_url=base))
    body = related_body([("application/dicom", dicom_bytes(_uid(), _uid()))])
    r = h.client.post("/v1/dicomweb/studies", content=body, headers={**h.auth(), "Content-Type": CTYPE})
    url = r.json()["00081190"]["Value"][0]
    assert url.startswith(base or "http://testserver/") and url.endswith(f"/v1/jobs/{url.rsplit('/', 1)[1]}")
    assert r.json()["00081199"]["Value"][0]["00081190"]["Value"][0] == url
    assert h.client.get(url.replace(base or "http://testserver", ""), headers=h.auth()).status_code == 200


def _stow(api: ApiHarness, body: bytes, query: str = "") -> Any:
    return api.client.post(f"/v1/dicomweb/studies{query}", content=body, headers={**api.auth(), "Content-Type": CTYPE})


@pytest.mark.parametrize(("view", "n_frames", "code"), [(None, 2, "missing_view"), ("A4C", 1, "single_frame")])
def test_an_unusable_study_is_422_at_post_and_makes_no_job(api: ApiHarness, view: str | None, n_frames: int,
                                                            code: str):
    r = _stow(api, related_body([("application/dicom", dicom_bytes(_uid(), _uid(), view=view, n_frames=n_frames))]))
    assert r.status_code == 422 and r.json()["code"] == code, r.text
    assert api.client.get("/v1/jobs", headers=api.auth()).json()["items"] == []
    assert api.services.store.list_keys("inputs/") == []


def test_the_view_query_names_the_view_the_header_lacks(api: ApiHarness):
    r = _stow(api, related_body([("application/dicom", dicom_bytes(_uid(), _uid(), view=None))]), "?view=A2C")
    assert r.status_code == 200, r.text
    job_id = r.headers["location"].rsplit("/", 1)[-1]
    manifest = b"".join(api.services.store.iter_bytes(f"inputs/{job_id}/manifest.json"))
    assert json.loads(manifest) == {"view": "A2C"}
    assert _stow(api, b"", "?view=PLAX").status_code == 422


def _end(api: ApiHarness, job_id: str, how: str) -> None:
    jobs = api.services.jobs
    if how == "cancelled":
        assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.auth()).json()["status"] == "cancelled"
        return
    now = utcnow()
    claim = jobs.claim(job_id, "test-worker", now, now - timedelta(hours=1))
    assert claim is not None
    if how == "failed":
        assert jobs.finish(claim, JobStatus.FAILED, error=JobError("reconstruction_failed", "boom"))
    elif how == "succeeded":
        assert jobs.finish(claim, JobStatus.SUCCEEDED, summary={})


@pytest.mark.parametrize(("state", "new_job"), [("failed", True), ("cancelled", True), ("queued", False),
                                                ("running", False), ("succeeded", False)])
def test_resending_after_a_failed_or_cancelled_job_starts_a_new_one(api: ApiHarness, state: str, new_job: bool):
    body = related_body([("application/dicom", dicom_bytes(_uid(), _uid()))])
    first = _stow(api, body)
    old = first.headers["location"]
    assert first.status_code == 200 and "Idempotent-Replayed" not in first.headers
    if state != "queued":
        _end(api, old.rsplit("/", 1)[-1], state)
    again = _stow(api, body)
    assert again.status_code == 200
    if new_job:
        assert again.headers["location"] != old
        assert again.headers[RETRY_HEADER] == old and "Idempotent-Replayed" not in again.headers
        assert api.client.get(again.headers["location"], headers=api.auth()).json()["status"] == "queued"
        assert api.client.get(old, headers=api.auth()).json()["status"] == state  # the old job is kept as it was
        third = _stow(api, body)  # now the new job is live: a replay of it
        assert third.headers["location"] == again.headers["location"]
        assert third.headers["Idempotent-Replayed"] == "true"
    else:
        assert again.headers["location"] == old
        assert again.headers["Idempotent-Replayed"] == "true" and RETRY_HEADER not in again.headers
