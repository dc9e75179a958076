"""The reconciler against a real Redis broker: lost messages re-enqueued once, dead workers' jobs recovered."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from service_testkit import ApiHarness, embedded_settings

from jobcore.db.models import utcnow
from jobcore.queue import CeleryQueue
from jobcore.reconciler import Reconciler
from jobcore.storage import output_key


@pytest.fixture()
def broker_api(api_factory, tmp_data_dir: Path, redis_url: str, queue_name: str) -> ApiHarness:
    return api_factory(embedded_settings(tmp_data_dir, broker_url=redis_url, queue_name=queue_name,
                                         requeue_after_s=1, heartbeat_interval_s=1, heartbeat_stale_s=5,
                                         job_max_attempts=2))


def _reconciler(api: ApiHarness) -> Reconciler:
    s = api.services
    return Reconciler(s.settings, s.jobs, s.queue, s.store, s.metrics)


def test_submission_publishes_one_message_the_reconciler_can_see(broker_api: ApiHarness, make_study_zip):
    job_id = broker_api.post_study(make_study_zip()).json()["id"]
    queue = broker_api.services.queue
    assert isinstance(queue, CeleryQueue)
    assert queue.depth() == 1
    assert queue.pending_job_ids() == {job_id}
    report = _reconciler(broker_api).run_once(utcnow() + timedelta(seconds=10))
    assert report.reenqueued == 0 and queue.depth() == 1  # the broker still holds it


def test_jobs_lost_by_the_broker_are_reenqueued_once(broker_api: ApiHarness, make_study_zip, redis_url: str,
                                                     queue_name: str):
    ids = {broker_api.post_study(make_study_zip(seed=i)).json()["id"] for i in range(3)}
    client = redis.Redis.from_url(redis_url)
    client.delete(queue_name)  # Redis restarted without persistence: every message is gone
    queue = broker_api.services.queue
    assert queue.depth() == 0
    later = utcnow() + timedelta(seconds=10)
    assert _reconciler(broker_api).run_once(later).reenqueued == 3
    assert queue.pending_job_ids() == ids and queue.depth() == 3
    assert _reconciler(broker_api).run_once(later + timedelta(seconds=10)).reenqueued == 0
    client.close()


def test_stale_running_job_is_requeued_then_failed_when_attempts_are_used(broker_api: ApiHarness, make_study_zip,
                                                                           redis_url: str, queue_name: str):
    job_id = broker_api.post_study(make_study_zip()).json()["id"]
    jobs, store = broker_api.services.jobs, broker_api.services.store
    redis.Redis.from_url(redis_url).delete(queue_name)
    t0 = utcnow() - timedelta(minutes=5)
    assert jobs.claim(job_id, "dead-1", t0, t0 - timedelta(seconds=60)) is not None
    store.put_stream(output_key(job_id, "mesh.glb"), io.BytesIO(b"half"), length=4)  # a partial upload
    report = _reconciler(broker_api).run_once()
    assert report.requeued_stale == 1
    assert jobs.get(job_id).status == "queued"  # type: ignore[union-attr]
    assert broker_api.services.queue.pending_job_ids() == {job_id}
    t1 = utcnow() - timedelta(minutes=1)
    assert jobs.claim(job_id, "dead-2", t1, t1 - timedelta(seconds=60)) is not None  # dies again
    report = _reconciler(broker_api).run_once()
    assert report.failed_stale == 1
    job = broker_api.client.get(f"/v1/jobs/{job_id}", headers=broker_api.auth()).json()
    assert job["status"] == "failed" and job["error"]["code"] == "worker_lost"
    assert store.list_keys(f"outputs/{job_id}/") == []  # no orphaned partial artifacts


def test_cancel_requested_on_a_dead_worker_ends_cancelled(broker_api: ApiHarness, make_study_zip):
    job_id = broker_api.post_study(make_study_zip()).json()["id"]
    jobs = broker_api.services.jobs
    t0 = utcnow() - timedelta(minutes=5)
    assert jobs.claim(job_id, "dead", t0, t0 - timedelta(seconds=60)) is not None
    assert broker_api.client.post(f"/v1/jobs/{job_id}/cancel", headers=broker_api.auth()).status_code == 202
    _reconciler(broker_api).run_once()
    assert jobs.get(job_id).status == "cancelled"  # type: ignore[union-attr]


def test_readyz_reports_an_unreachable_broker(api_factory, tmp_data_dir: Path, make_study_zip):
    api = api_factory(embedded_settings(tmp_data_dir, broker_url="redis://127.0.0.1:9/0", queue_name="q"))
    r = api.client.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["broker"] == "broker_unavailable"
    # the API still accepts the study; the job waits in the table for the reconciler
    sub = api.post_study(make_study_zip())
    assert sub.status_code == 202
    job = api.services.jobs.get(sub.json()["id"])
    assert job is not None and job.enqueued_at is None


def test_embedded_start_recovers_jobs_it_was_running(api: ApiHarness, make_study_zip):
    job_id = api.post_study(make_study_zip()).json()["id"]
    now = utcnow()
    assert api.services.jobs.claim(job_id, "embedded-before-crash", now, now - timedelta(seconds=60))
    report = _reconciler(api).recover_orphans()  # what an embedded start does before its worker runs
    assert report.requeued_stale == 1
    job = api.services.jobs.get(job_id)
    assert job is not None and (job.status, job.attempts, job.claim_token) == ("queued", 1, None)
