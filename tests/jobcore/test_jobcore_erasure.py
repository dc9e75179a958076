"""Erasing jobs (issue #15): ``DELETE /v1/jobs/{id}`` removes inputs, outputs and the record (tenant-checked,
idempotent, audit-logged without PHI); ``POST /v1/jobs/{id}/cancel`` cancels; the retention setting purges."""

from __future__ import annotations

import io
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from service_testkit import ApiHarness, embedded_settings

from jobcore.db.models import Job, JobStatus, utcnow
from jobcore.reconciler import Reconciler


def _finished(api: ApiHarness, make_study_zip, status: JobStatus = JobStatus.SUCCEEDED, seed: int = 0) -> str:
    """A job with inputs and (for a success) outputs in the store, finished as a worker would record it."""
    job_id = api.post_study(make_study_zip(seed=seed)).json()["id"]
    now = utcnow()
    claim = api.services.jobs.claim(job_id, "w", now, now - timedelta(seconds=60))
    assert claim is not None
    artifacts = {}
    if status is JobStatus.SUCCEEDED:
        info = api.services.store.put_stream(f"outputs/{job_id}/report.json", io.BytesIO(b"{}"), length=2)
        artifacts = {"report.json": {"key": info.key, "etag": info.etag, "content_type": "application/json"}}
    assert api.services.jobs.finish(claim, status, artifacts=artifacts)
    return job_id


def _objects(api: ApiHarness, job_id: str) -> list[str]:
    store = api.services.store
    return store.list_keys(f"inputs/{job_id}/") + store.list_keys(f"outputs/{job_id}/")


def _finished_total(api: ApiHarness, status: str) -> float:
    value = api.services.metrics.registry.get_sample_value("echo4d_jobs_finished_total", {"status": status})
    return value or 0.0


def test_delete_erases_inputs_outputs_and_the_record(api: ApiHarness, make_study_zip,
                                                     caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    job_id = _finished(api, make_study_zip)
    assert len(_objects(api, job_id)) >= 2
    r = api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth())
    assert r.status_code == 204 and r.content == b""
    assert _objects(api, job_id) == [] and api.services.jobs.get(job_id) is None
    assert api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).status_code == 404
    assert api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth()).status_code == 404  # nothing left to do
    audit = [r for r in caplog.records if "job_erased" in r.getMessage()]
    assert len(audit) == 1 and job_id in audit[0].getMessage() and "study.zip" not in audit[0].getMessage()


def test_delete_of_a_queued_job_cancels_and_erases_it(api: ApiHarness, make_study_zip):
    job_id = api.post_study(make_study_zip()).json()["id"]
    before = _finished_total(api, "cancelled")
    assert api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth()).status_code == 204
    assert _objects(api, job_id) == [] and api.services.jobs.get(job_id) is None
    assert _finished_total(api, "cancelled") == before + 1
    now = utcnow()
    assert api.services.jobs.claim(job_id, "w", now, now - timedelta(seconds=60)) is None  # no worker runs it


def test_delete_of_a_running_job_is_409_and_erases_nothing(api: ApiHarness, make_study_zip):
    job_id = api.post_study(make_study_zip()).json()["id"]
    now = utcnow()
    assert api.services.jobs.claim(job_id, "w", now, now - timedelta(seconds=60)) is not None
    r = api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth())
    assert r.status_code == 409 and "cancel" in r.json()["detail"]
    assert _objects(api, job_id) and api.services.jobs.get(job_id) is not None


def test_another_tenant_cannot_erase(api: ApiHarness, make_study_zip):
    job_id = _finished(api, make_study_zip)
    r = api.client.delete(f"/v1/jobs/{job_id}", headers=api.auth(api.new_key("t2")))
    assert r.status_code == 404
    assert len(_objects(api, job_id)) >= 2 and api.services.jobs.get(job_id) is not None


def test_cancel_while_queued_is_counted_as_finished(api: ApiHarness, make_study_zip):
    """Before: the worker counted the jobs it ended, the API's cancel of a queued job was counted nowhere."""
    job_id = api.post_study(make_study_zip()).json()["id"]
    before = _finished_total(api, "cancelled")
    assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.auth()).json()["status"] == "cancelled"
    assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.auth()).status_code == 200
    assert _finished_total(api, "cancelled") == before + 1  # once, not per request


@pytest.mark.parametrize("days", [0, 7])
def test_retention_purges_jobs_finished_long_ago(api_factory, tmp_data_dir: Path, make_study_zip, days: int):
    from sqlalchemy import update

    api = api_factory(embedded_settings(tmp_data_dir, retention_days=days))
    old, recent = _finished(api, make_study_zip, seed=1), _finished(api, make_study_zip, JobStatus.FAILED, seed=2)
    queued = api.post_study(make_study_zip(seed=3)).json()["id"]
    with api.services.sessions.begin() as s:
        s.execute(update(Job).where(Job.id == old).values(finished_at=utcnow() - timedelta(days=8)))
    s_ = api.services
    report = Reconciler(s_.settings, s_.jobs, s_.queue, s_.store, s_.metrics).run_once()
    assert report.purged == (1 if days else 0)
    assert (api.services.jobs.get(old) is None) == bool(days) and (_objects(api, old) == []) == bool(days)
    assert api.services.jobs.get(recent) is not None and api.services.jobs.get(queued) is not None
    assert _objects(api, queued)
