"""GET /v1/jobs/{id}/dicom: the stored DICOM results as one multipart/related; type="application/dicom" body,
with the job routes' key, tenant and 404 rules, and 406 for an Accept it cannot meet.

The objects are arbitrary bytes placed by the test: under test is the HTTP delivery (the worker tests
read real ones back)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dicom_kit import multipart_parts
from service_testkit import ApiHarness, succeed_with

from jobcore.artifacts import ARTIFACTS, DICOM_ARTIFACTS
from jobcore.storage import output_key

BLOBS = {name: f"DICM-{name}-".encode() * 300 for name in DICOM_ARTIFACTS}


@pytest.fixture()
def done(api: ApiHarness, make_study_zip: Callable[..., bytes]) -> tuple[ApiHarness, str]:
    job_id = api.post_study(make_study_zip()).json()["id"]
    succeed_with(api, job_id, {"report.json": b"{}"} | {name: BLOBS[name] for name in reversed(DICOM_ARTIFACTS)})
    return api, job_id


@pytest.mark.parametrize("accept", [None, "*/*", 'multipart/related; type="application/dicom"',
                                    "application/json, multipart/related"])
def test_the_results_come_as_multipart_related_in_a_fixed_order(done: tuple[ApiHarness, str],
                                                                 accept: str | None) -> None:
    api, job_id = done
    headers = {**api.auth(), **({"Accept": accept} if accept else {})}
    r = api.client.get(f"/v1/jobs/{job_id}/dicom", headers=headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith('multipart/related; type="application/dicom"; boundary=')
    parts = multipart_parts(r.content, r.headers["content-type"])
    assert [body for _, body in parts] == [BLOBS[name] for name in DICOM_ARTIFACTS]
    assert all(h["content-type"] == "application/dicom" for h, _ in parts)
    job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
    assert job["links"]["dicom"] == f"/v1/jobs/{job_id}/dicom"
    assert set(DICOM_ARTIFACTS) <= set(job["artifacts"])


def test_an_accept_it_cannot_meet_is_406(done: tuple[ApiHarness, str]) -> None:
    api, job_id = done
    for accept in ("application/json", 'multipart/related; type="image/jpeg"'):
        r = api.client.get(f"/v1/jobs/{job_id}/dicom", headers={**api.auth(), "Accept": accept})
        assert r.status_code == 406 and r.headers["content-type"] == "application/problem+json"


def test_key_tenant_and_status_rules(done: tuple[ApiHarness, str], api: ApiHarness,
                                     make_study_zip: Callable[..., bytes]) -> None:
    _, job_id = done
    assert api.client.get(f"/v1/jobs/{job_id}/dicom").status_code == 401
    other = api.new_key("t2")
    assert api.client.get(f"/v1/jobs/{job_id}/dicom", headers=api.auth(other)).status_code == 404
    queued = api.post_study(make_study_zip(), headers={"Idempotency-Key": "queued-one"}).json()["id"]
    r = api.client.get(f"/v1/jobs/{queued}/dicom", headers=api.auth())
    assert r.status_code == 404 and "no DICOM results" in r.json()["detail"]
    assert api.client.get("/v1/jobs/nope/dicom", headers=api.auth()).status_code == 404


def test_a_job_finished_without_dicom_results_is_404(api: ApiHarness, make_study_zip: Callable[..., bytes]) -> None:
    job_id = api.post_study(make_study_zip()).json()["id"]
    succeed_with(api, job_id, {"report.json": b"{}"})
    r = api.client.get(f"/v1/jobs/{job_id}/dicom", headers=api.auth())
    assert r.status_code == 404
    assert "dicom" not in api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()["links"]


def test_a_result_missing_from_the_store_is_404_not_a_truncated_body(done: tuple[ApiHarness, str]) -> None:
    api, job_id = done
    assert api.services.store.delete_prefix(output_key(job_id, ARTIFACTS["cine-sc.dcm"][0])) == 1
    r = api.client.get(f"/v1/jobs/{job_id}/dicom", headers=api.auth())
    assert r.status_code == 404 and "missing" in r.json()["detail"]
