"""run_job: claims, attempts, error policy, cancellation and heartbeats (embedded stack, real code paths).

These jobs stop before or at ingest, so they need no shape prior; the end-to-end tests run the
full reconstruction.
"""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from service_testkit import ApiHarness, broken_study_zip_bytes, embedded_settings, worker_context

from jobcore.db.models import utcnow
from jobcore.errors import TransientError
from worker.control import JobCancelled, JobControl
from worker.runner import Outcome, run_job


def test_bad_input_fails_at_ingest_once_with_its_code(api: ApiHarness):
    job_id = api.post_study(broken_study_zip_bytes()).json()["id"]
    ctx = worker_context(api.services)
    assert run_job(ctx, job_id) is Outcome.FAILED
    job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
    assert (job["status"], job["stage"], job["attempts"]) == ("failed", "ingest", 1)
    assert job["error"]["code"] == "empty_mask" and job["error"]["field"] == "views.A4C.masks"
    assert "fetch" in job["stage_timings_s"]
    assert api.services.store.list_keys(f"outputs/{job_id}/") == []
    assert run_job(ctx, job_id) is Outcome.SKIPPED  # a redelivered message does nothing


def test_a_job_that_keeps_killing_its_worker_fails_after_max_attempts(api: ApiHarness, make_study_zip):
    job_id = api.post_study(make_study_zip()).json()["id"]
    jobs = api.services.jobs
    max_attempts = api.services.settings.job_max_attempts
    start = utcnow() - timedelta(hours=2)
    for i in range(max_attempts):  # each worker claims it, then dies (no heartbeat ever again)
        t = start + timedelta(minutes=10 * i)
        assert jobs.claim(job_id, f"dead-{i}", t, t - timedelta(seconds=1)) is not None
    assert run_job(worker_context(api.services), job_id) is Outcome.FAILED
    job = jobs.get(job_id)
    assert job is not None and job.error_code == "worker_lost" and job.attempts == max_attempts + 1


def test_transient_store_failure_releases_the_job_then_fails_after_max_attempts(
        api_factory, tmp_data_dir: Path, moto_endpoint: str, bucket: str, make_study_zip):
    settings = embedded_settings(tmp_data_dir, store_backend="minio", s3_endpoint=moto_endpoint, s3_bucket=bucket,
                                 s3_access_key="testing", s3_secret_key="testing", job_max_attempts=2)
    api = api_factory(settings)
    job_id = api.post_study(make_study_zip()).json()["id"]
    from jobcore.storage.s3 import MinioStore

    ctx = worker_context(api.services)
    ctx.store = MinioStore("127.0.0.1:9", "testing", "testing", bucket)  # the store goes away
    with pytest.raises(TransientError):
        run_job(ctx, job_id)
    job = api.services.jobs.get(job_id)
    assert job is not None and (job.status, job.attempts, job.error_code) == ("queued", 1, "store_unavailable")
    assert job.run_after is not None and job.run_after > job.updated_at - timedelta(seconds=1)
    assert run_job(ctx, job_id) is Outcome.FAILED  # second and last attempt
    job = api.services.jobs.get(job_id)
    assert job is not None and (job.status, job.attempts, job.error_code) == ("failed", 2, "store_unavailable")


def test_checkpoint_stops_a_running_job_when_cancelled(api: ApiHarness, make_study_zip):
    job_id = api.post_study(make_study_zip()).json()["id"]
    jobs = api.services.jobs
    now = utcnow()
    claim = jobs.claim(job_id, "w", now, now - timedelta(seconds=60))
    assert claim is not None
    control = JobControl(jobs, claim, api.services.metrics, heartbeat_interval_s=0.05, soft_time_limit_s=60)
    with control:
        control.checkpoint()  # nothing to stop yet
        assert api.client.post(f"/v1/jobs/{job_id}/cancel", headers=api.auth()).status_code == 202
        with pytest.raises(JobCancelled):
            control.checkpoint()
        assert control.should_stop()


def test_heartbeat_refreshes_and_detects_a_lost_claim(api: ApiHarness, make_study_zip):
    job_id = api.post_study(make_study_zip()).json()["id"]
    jobs = api.services.jobs
    t0 = utcnow() - timedelta(minutes=10)
    claim = jobs.claim(job_id, "w1", t0, t0 - timedelta(seconds=60))
    assert claim is not None
    control = JobControl(jobs, claim, api.services.metrics, heartbeat_interval_s=1, soft_time_limit_s=60)
    control.beat(utcnow())
    assert jobs.get(job_id).heartbeat_at > t0 + timedelta(minutes=9)  # type: ignore[union-attr]
    later = utcnow() + timedelta(minutes=5)
    assert jobs.claim(job_id, "w2", later, later - timedelta(seconds=60)) is not None  # taken over
    control.beat(utcnow())
    assert control.claim_lost and control.should_stop()


def test_soft_deadline_stops_at_the_next_boundary(api: ApiHarness, make_study_zip):
    from worker.control import DeadlineExceeded

    job_id = api.post_study(make_study_zip()).json()["id"]
    now = utcnow()
    claim = api.services.jobs.claim(job_id, "w", now, now - timedelta(seconds=60))
    assert claim is not None
    control = JobControl(api.services.jobs, claim, api.services.metrics, heartbeat_interval_s=1,
                         soft_time_limit_s=0)
    assert control.should_stop()
    with pytest.raises(DeadlineExceeded):
        control.checkpoint()


def test_inputs_of_files_kind_come_back_under_their_client_names(api: ApiHarness, tmp_path: Path):
    import json

    import numpy as np

    from worker.pipeline import fetch_inputs

    raw = []
    for k in range(3):
        buf = io.BytesIO()
        np.save(buf, np.full((2 + k, 8, 8), k, np.uint8))
        raw.append(buf.getvalue())
    files = [("files", ("a4c clip.npy", raw[0], "application/octet-stream")),
             ("files", ("../../etc/passwd.npy", raw[1], "application/octet-stream")),
             ("files", ("a4c clip.npy", raw[2], "application/octet-stream"))]
    doc = {"view": "A4C", "pixel_spacing_mm": [0.5, 0.5], "fps": 30}
    r = api.client.post("/v1/studies", files=files, data={"manifest": json.dumps(doc)}, headers=api.auth())
    job = api.services.jobs.get(r.json()["id"])
    assert job is not None
    paths, manifest = fetch_inputs(api.services.store, job.id, job.input_kind, list(job.input_keys), tmp_path)
    assert [p.name for p in paths] == ["a4c clip.npy", "passwd.npy", "0002.npy"]
    assert [p.read_bytes() for p in paths] == raw
    assert manifest == doc
    assert all(p.parent == tmp_path for p in paths)


def test_meshes_zip_is_byte_reproducible(tmp_path: Path):
    from worker.pipeline import package_outputs

    zips = []
    for run in ("a", "b"):
        out = tmp_path / run
        (out / "meshes").mkdir(parents=True)
        for name, raw in (("frame_001.vtp", b"<vtp 1/>"), ("frame_000.vtp", b"<vtp 0/>"), ("meshes.pvd", b"<pvd/>")):
            (out / "meshes" / name).write_bytes(raw)
        (out / "report.json").write_text("{}")
        (out / "mesh.glb").write_bytes(b"glTF")
        zips.append(package_outputs(out, {})["meshes"].read_bytes())
    assert zips[0] == zips[1]
    import zipfile

    assert zipfile.ZipFile(io.BytesIO(zips[0])).namelist() == [
        "meshes/frame_000.vtp", "meshes/frame_001.vtp", "meshes/meshes.pvd"]


def test_missing_required_outputs_is_a_model_error(tmp_path: Path):
    from models.errors import ModelError
    from worker.pipeline import package_outputs

    (tmp_path / "mesh.glb").write_bytes(b"glTF")
    with pytest.raises(ModelError):
        package_outputs(tmp_path, {})


def test_the_segmenter_setting_reaches_b_mode_jobs(api_factory: Any, tmp_path: Path):
    """ECHO4D_SEGMENTER names the workers' segmenter: a site model that is not there fails a B-mode job at ingest
    with checkpoint_invalid (the shipped default is exercised by the end-to-end tests)."""
    import json

    import numpy as np

    api = api_factory(embedded_settings(tmp_path / "var", segmenter=tmp_path / "site_model.pt"))
    frames = io.BytesIO()
    np.save(frames, np.random.default_rng(0).integers(0, 255, (4, 32, 32), dtype=np.uint8))
    manifest = {"view": "A4C", "pixel_spacing_mm": [0.5, 0.5], "fps": 25, "kind": "images"}
    r = api.client.post("/v1/studies", files={"files": ("a4c.npy", frames.getvalue(), "application/octet-stream")},
                        data={"manifest": json.dumps(manifest)}, headers=api.auth())
    assert r.status_code == 202, r.text
    ctx = worker_context(api.services)
    assert run_job(ctx, r.json()["id"]) is Outcome.FAILED
    job = api.client.get(r.headers["location"], headers=api.auth()).json()
    assert (job["stage"], job["error"]["code"]) == ("ingest", "checkpoint_invalid")
    assert "site_model.pt" in job["error"]["detail"]
    assert ctx.models.segmenter() is ctx.models.segmenter()  # one per process
