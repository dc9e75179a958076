"""The embedded worker child process: started and stopped by the API's lifespan, restarted when it dies,
gone when the API is killed, and the only process that imports torch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from service_testkit import (
    ApiHarness,
    broken_study_zip_bytes,
    embedded_settings,
    free_port,
    reconstruction_ready,
    study_zip_bytes,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads process state from /proc")


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _children_of(pid: int) -> list[int]:
    return [int(c) for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def _finished(api: ApiHarness, job_id: str, timeout: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return _until(done, timeout, f"job {job_id} finished")  # type: ignore[no-any-return]


@contextmanager
def _serving(settings: Any) -> Iterator[ApiHarness]:
    """The embedded API with its worker child, stopped (lifespan shutdown) when the block ends."""
    from fastapi.testclient import TestClient

    from cli.composition import serving_app
    from service.auth import create_key
    from service.context import build_services

    services = build_services(settings)
    try:
        _, key = create_key(services.tenants, "t1", services.pepper)
        with TestClient(serving_app(settings, services=services), raise_server_exceptions=False) as client:
            yield ApiHarness(client, services, key)
    finally:
        services.close()


def test_the_worker_is_a_child_process_that_runs_jobs_and_stops_with_the_api(tmp_data_dir: Path):
    with _serving(embedded_settings(tmp_data_dir, embedded_worker=True)) as api:
        supervisor = api.client.app.state.embedded_worker  # type: ignore[attr-defined]
        pid = supervisor.pid
        assert pid is not None and pid != os.getpid() and _alive(pid) and _parent_of(pid) == os.getpid()
        job_id = api.post_study(broken_study_zip_bytes()).json()["id"]
        job = _finished(api, job_id, 120)
        assert job["status"] == "failed" and job["error"]["code"] == "empty_mask"
        assert api.services.jobs.get(job_id).worker_id.endswith(f":{pid}")  # type: ignore[union-attr]
    assert not _alive(pid) and supervisor.pid is None  # the lifespan's shutdown stopped (and reaped) it


def test_a_killed_child_is_restarted_and_its_job_still_completes(tmp_data_dir: Path):
    if reason := reconstruction_ready():
        pytest.skip(reason)
    settings = embedded_settings(tmp_data_dir, embedded_worker=True, job_max_attempts=3, heartbeat_interval_s=1)
    with _serving(settings) as api:
        supervisor = api.client.app.state.embedded_worker  # type: ignore[attr-defined]
        first = supervisor.pid
        job_id = api.post_study(study_zip_bytes(n_frames=8), data={"profile": "smoke"}).json()["id"]
        _until(lambda: api.services.jobs.get(job_id).status == "running", 120, "the child claimed the job")
        os.kill(first, signal.SIGKILL)  # mid-job
        second = _until(lambda: supervisor.pid if supervisor.pid not in (None, first) else None, 30,
                        "a new child was started")
        job = _finished(api, job_id, 300)
        assert job["status"] == "succeeded", job
        assert supervisor.restarts == 1 and _alive(second) and not _alive(first)
        row = api.services.jobs.get(job_id)
        assert row is not None and row.attempts == 2 and row.worker_id.endswith(f":{second}")


_SERVE_AND_REPORT = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from fastapi.testclient import TestClient
from cli.composition import serving_app
from service.auth import create_key
from service.context import build_services
from service_testkit import embedded_settings, study_zip_bytes

settings = embedded_settings(Path(sys.argv[1]), embedded_worker=True)
services = build_services(settings)
_, key = create_key(services.tenants, "t1", services.pepper)
auth = {"Authorization": f"Bearer {key}"}
with TestClient(serving_app(settings, services=services)) as client:
    r = client.post("/v1/studies", files={"file": ("s.zip", study_zip_bytes(n_frames=8), "application/zip")},
                    data={"profile": "smoke"}, headers=auth)
    url = r.headers["location"]
    deadline = time.monotonic() + 300
    while (job := client.get(url, headers=auth).json())["status"] not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    mesh = client.get(f"/v1/jobs/{job['id']}/artifacts/mesh.glb", headers=auth, follow_redirects=True)
    print(json.dumps({"status": job["status"], "mesh": mesh.status_code,
                      "heavy": sorted(m for m in ("torch", "models.recon.pipeline", "worker.model_cache")
                                      if m in sys.modules)}))
services.close()
"""


def test_the_api_process_never_imports_torch(tmp_path: Path):
    if reason := reconstruction_ready():
        pytest.skip(reason)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO4D_")} | {"OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _SERVE_AND_REPORT, str(tmp_path / "var"), str(ROOT / "tests")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"status": "succeeded", "mesh": 200, "heavy": []}


@pytest.mark.slow
def test_the_child_exits_when_the_api_is_killed(tmp_path: Path):
    """No orphan: SIGKILL of ``echo4d serve`` closes the pipe, and the child exits on EOF."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO4D_")} | {"OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "echo4d"), "serve", "--port", str(free_port()),
                             "--data-dir", str(tmp_path / "var")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        children = _until(lambda: _children_of(proc.pid), 60, "echo4d serve started its worker child")
        assert len(children) == 1 and _alive(children[0])
    finally:
        proc.kill()
        proc.wait()
    _until(lambda: not _alive(children[0]), 30, "the orphaned child exited")
