"""The distributed stack end to end: API (PostgreSQL, MinIO API via moto, Redis) + a real `echo4d worker` subprocess.

The failing-input path runs everywhere; the reconstruction path runs once the shape prior and
pipeline are in the tree (explicit skip otherwise), and validates the downloaded mesh.glb and
report.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_testkit import ApiHarness, broken_study_zip_bytes, free_port, reconstruction_ready

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack_env(pg_url: str, redis_url: str, moto_endpoint: str, session_tag: str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """ECHO4D_* variables shared by the in-process API and the worker subprocess."""
    import redis

    queue = f"gpu_celery_{session_tag}"
    env = {
        "ECHO4D_DATABASE_URL": pg_url, "ECHO4D_BROKER_URL": redis_url, "ECHO4D_QUEUE_NAME": queue,
        "ECHO4D_STORE_BACKEND": "minio", "ECHO4D_S3_ENDPOINT": moto_endpoint,
        "ECHO4D_S3_BUCKET": f"echo4d-celery-{session_tag.replace('_', '-')}", "ECHO4D_S3_ACCESS_KEY": "testing",
        "ECHO4D_S3_SECRET_KEY": "testing", "ECHO4D_DATA_DIR": str(tmp_path_factory.mktemp("celery-var")),
        "ECHO4D_HEARTBEAT_INTERVAL_S": "1", "ECHO4D_HEARTBEAT_STALE_S": "10", "ECHO4D_RECONCILE_INTERVAL_S": "0",
        "ECHO4D_WORKER_METRICS_PORT": str(free_port()), "ECHO4D_API_KEY_PEPPER": "test-pepper",
        "ECHO4D_RATE_LIMIT_PER_MINUTE": "0", "ECHO4D_DEVICE": "cpu", "ECHO4D_LOG_LEVEL": "INFO",
    }
    yield env
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{queue}*"):
        client.delete(key)
    client.close()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([str(Path(sys.executable).parent / "echo4d"), "worker"], cwd=ROOT,
                                env={**os.environ, **env, "OMP_NUM_THREADS": "1"}, stdout=out,
                                stderr=subprocess.STDOUT)


def stop_worker(proc: subprocess.Popen, log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.returncode not in (0, -signal.SIGTERM):
        print(log.read_text()[-5000:])


@pytest.fixture(scope="module")
def worker_process(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    log = tmp_path_factory.mktemp("worker-log") / "worker.log"
    proc = start_worker(stack_env, log)
    yield proc
    stop_worker(proc, log)


@pytest.fixture()
def stack(api_factory, stack_env: dict[str, str], worker_process: subprocess.Popen,
          monkeypatch: pytest.MonkeyPatch) -> ApiHarness:
    for k, v in stack_env.items():
        monkeypatch.setenv(k, v)
    from jobcore.settings import Settings

    return api_factory(Settings())


def wait_for(api: ApiHarness, job_id: str, done: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
             timeout: float = 120.0, until: Any = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
        if job["status"] in done or (until is not None and until(job)):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job['status']}/{job['stage']} after {timeout} s")


@pytest.mark.slow
def test_bad_study_fails_in_the_worker_with_its_code(stack: ApiHarness, stack_env: dict[str, str]):
    job_id = stack.post_study(broken_study_zip_bytes()).json()["id"]
    job = wait_for(stack, job_id, timeout=90)
    assert job["status"] == "failed" and job["error"]["code"] == "empty_mask" and job["attempts"] == 1
    metrics = httpx.get(f"http://127.0.0.1:{stack_env['ECHO4D_WORKER_METRICS_PORT']}/metrics").text
    assert 'echo4d_jobs_finished_total{status="failed"}' in metrics
    assert "echo4d_job_stage_duration_seconds_bucket" in metrics


@pytest.mark.slow
def test_study_to_mesh_end_to_end(stack: ApiHarness, make_study_zip):
    reason = reconstruction_ready()
    if reason:
        pytest.skip(reason)
    body = make_study_zip(views=("A4C", "A2C"), n_frames=8)
    r = stack.post_study(body, data={"profile": "smoke"}, headers={"Idempotency-Key": "e2e-1"})
    assert r.status_code == 202
    job_id = r.json()["id"]
    job = wait_for(stack, job_id, timeout=240)
    assert job["status"] == "succeeded", job
    assert job["progress"] == 100.0 and set(job["stage_timings_s"]) >= {"fetch", "ingest", "reconstruct", "upload"}
    assert {"mesh.glb", "report.json", "meshes", "ed.ply", "es.ply"} <= set(job["artifacts"])
    glb = stack.client.get(f"/v1/jobs/{job_id}/artifacts/mesh.glb", headers=stack.auth(), follow_redirects=False)
    assert glb.status_code == 307  # MinIO: a presigned URL
    data = httpx.get(glb.headers["location"]).content
    assert data[:4] == b"glTF" and int.from_bytes(data[8:12], "little") == len(data)
    import trimesh

    scene = trimesh.load(__import__("io").BytesIO(data), file_type="glb")
    assert len(scene.geometry) >= 1
    rep = stack.client.get(f"/v1/jobs/{job_id}/artifacts/report.json", headers=stack.auth(), follow_redirects=False)
    assert rep.status_code == 307
    report = json.loads(httpx.get(rep.headers["location"]).content)
    from models.export.report import validate_report

    validate_report(report)
    assert job["summary"]["edv_ml"] > job["summary"]["esv_ml"] > 0
    # idempotent resubmission: same job, no new work
    again = stack.post_study(body, data={"profile": "smoke"}, headers={"Idempotency-Key": "e2e-1"})
    assert again.json()["id"] == job_id and again.headers["idempotent-replayed"] == "true"
    # the artifacts exist exactly once
    keys = stack.services.store.list_keys(f"outputs/{job_id}/")
    assert len(keys) == len(set(keys)) == len(job["artifacts"])
    assert stack.client.post(f"/v1/jobs/{job_id}/cancel", headers=stack.auth()).status_code == 409


@pytest.mark.slow
def test_cancel_while_running_stops_the_job(stack: ApiHarness, make_study_zip):
    reason = reconstruction_ready()
    if reason:
        pytest.skip(reason)
    job_id = stack.post_study(make_study_zip(seed=7), data={"profile": "smoke"}).json()["id"]
    wait_for(stack, job_id, until=lambda j: j["status"] == "running" and j["stage"] == "reconstruct", timeout=120)
    assert stack.client.post(f"/v1/jobs/{job_id}/cancel", headers=stack.auth()).status_code == 202
    job = wait_for(stack, job_id, timeout=120)
    assert job["status"] == "cancelled" and job["artifacts"] == {}
    assert stack.services.store.list_keys(f"outputs/{job_id}/") == []


@pytest.mark.slow
def test_prefork_worker_metrics_add_up_across_children(api_factory, stack_env: dict[str, str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch, redis_url: str):
    env = {**stack_env, "ECHO4D_QUEUE_NAME": stack_env["ECHO4D_QUEUE_NAME"] + "_prefork",
           "ECHO4D_WORKER_POOL": "prefork", "ECHO4D_WORKER_CONCURRENCY": "2",
           "ECHO4D_METRICS_MULTIPROC_DIR": str(tmp_path / "prom"), "ECHO4D_WORKER_METRICS_PORT": str(free_port())}
    (tmp_path / "prom").mkdir()
    (tmp_path / "prom" / "counter_99999.db").write_bytes(b"stale file of a dead process")
    proc = start_worker(env, tmp_path / "prefork.log")
    try:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        from jobcore.settings import Settings

        api = api_factory(Settings())
        ids = [api.post_study(broken_study_zip_bytes(), headers={"Idempotency-Key": f"pf-{i}"}).json()["id"]
               for i in range(3)]
        for job_id in ids:
            assert wait_for(api, job_id, timeout=90)["error"]["code"] == "empty_mask"
        url = f"http://127.0.0.1:{env['ECHO4D_WORKER_METRICS_PORT']}/metrics"
        text = httpx.get(url).text
        line = next(x for x in text.splitlines() if x.startswith('echo4d_jobs_finished_total{status="failed"}'))
        assert float(line.split()[-1]) == 3.0  # summed over the children's files
    finally:
        stop_worker(proc, tmp_path / "prefork.log")
        import redis

        redis.Redis.from_url(redis_url).delete(env["ECHO4D_QUEUE_NAME"])


def test_rabbitmq_broker_url_switch(amqp_url: str, session_tag: str):
    from jobcore.celery_app import create_celery
    from jobcore.queue import CeleryQueue
    from jobcore.settings import Settings

    queue_name = f"gpu_amqp_{session_tag}"
    app = create_celery(Settings(broker_url=amqp_url, queue_name=queue_name))
    queue = CeleryQueue(app, queue_name)
    queue.ping()
    queue.enqueue("job-1")
    queue.enqueue("job-2")
    try:
        deadline = time.monotonic() + 10
        while queue.depth() != 2 and time.monotonic() < deadline:  # publishes are asynchronous
            time.sleep(0.2)
        assert queue.depth() == 2
        assert queue.pending_job_ids() is None  # not scannable: the reconciler falls back to age
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue_name)
