"""Plain helpers of the reliability tests (fixtures live in ``conftest.py``): waiting, the job-table and store
consistency check every fault test ends with, a stoppable S3 server, worker subprocesses, private Redis and
PostgreSQL servers to restart, and a live uvicorn server.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from service_testkit import free_port, study_zip_bytes

ROOT = Path(__file__).resolve().parents[2]


TERMINAL = ("succeeded", "failed", "cancelled")




def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with closing(socket.socket()) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def settings_from_env(env: dict[str, str], **overrides: Any) -> Any:
    """``Settings`` from an ``ECHO4D_*`` dict (the same values a worker subprocess reads from its environment)."""
    from jobcore.settings import Settings

    values: dict[str, Any] = {k.removeprefix("ECHO4D_").lower(): v for k, v in env.items() if k.startswith("ECHO4D_")}
    values.update(overrides)
    return Settings(**values)


def job_row(services: Any, job_id: str) -> Any:
    job = services.jobs.get(job_id)
    assert job is not None, job_id
    return job


def wait_terminal(services: Any, job_ids: list[str], timeout: float) -> dict[str, Any]:
    """Wait until every job is terminal; returns {id: row}."""
    def done() -> bool:
        return all(job_row(services, j).status in TERMINAL for j in job_ids)

    try:
        wait_until(done, timeout, 0.3, "all jobs terminal")
    except AssertionError:
        states = {j: (r.status, r.stage, r.attempts, r.error_code) for j in job_ids for r in [job_row(services, j)]}
        raise AssertionError(f"jobs not terminal after {timeout} s: {states}") from None
    return {j: job_row(services, j) for j in job_ids}


def assert_jobs_consistent(services: Any, job_ids: list[str], *, allow_extra_attempt: bool = True) -> dict[str, int]:
    """The invariants every fault test ends with; returns counts by status.

    Every job is terminal; a failed or cancelled job has a stable error code and no objects under
    ``outputs/{id}/``; a succeeded job has artifacts whose store keys are exactly the objects under
    ``outputs/{id}/`` (each once: no duplicate, missing or orphaned partial artifact); no claim token is
    left behind; attempts never exceed ``max_attempts`` (+1: the over-limit claim that fails the job).
    """
    counts: dict[str, int] = {}
    for job_id in job_ids:
        job = job_row(services, job_id)
        counts[job.status] = counts.get(job.status, 0) + 1
        assert job.status in TERMINAL, (job_id, job.status)
        assert job.claim_token is None and job.finished_at is not None, job_id
        assert job.attempts <= job.max_attempts + (1 if allow_extra_attempt else 0), (job_id, job.attempts)
        stored = services.store.list_keys(f"outputs/{job_id}/")
        assert len(stored) == len(set(stored)), stored
        if job.status == "succeeded":
            keys = sorted(str(meta["key"]) for meta in job.artifacts.values())
            assert keys and sorted(stored) == keys, (job_id, stored, keys)
            assert {"mesh.glb", "report.json"} <= set(job.artifacts)
            assert job.error_code is None, (job_id, job.error_code)
        else:
            assert job.error_code, (job_id, job.status)
            assert stored == [], (job_id, stored)
            assert job.artifacts == {}, job_id
    return counts


def orphan_inputs(services: Any) -> list[str]:
    """``inputs/{id}/`` folders in the store whose job row does not exist (a submission that failed half-way)."""
    ids = {key.split("/")[1] for key in services.store.list_keys("inputs/")}
    return sorted(i for i in ids if services.jobs.get(i) is None)


def idempotency_duplicates(services: Any) -> int:
    """Jobs beyond the first per (tenant, Idempotency-Key) in the whole table (a unique index forbids any)."""
    from sqlalchemy import func, select

    from jobcore.db.models import Job

    with services.sessions() as s:
        rows = s.execute(select(func.count()).select_from(Job).where(Job.idempotency_key.is_not(None))
                         .group_by(Job.tenant_id, Job.idempotency_key).having(func.count() > 1)).all()
    return len(rows)


class MotoControl:
    """moto's S3 server in this process on a fixed port: stop it (unreachable store) and start it again on the
    same port; the objects survive because moto keeps them in this process, like a MinIO restart keeps its disk."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        wait_until(lambda: port_open(self.port), 15, 0.05, "moto listening")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        wait_until(lambda: not port_open(self.port), 15, 0.05, "moto stopped")

    @property
    def running(self) -> bool:
        return self._server is not None


class BlackHole:
    """A TCP port that accepts connections and never answers (a hung store, or a network that drops replies):
    the kernel completes the handshakes, nobody reads the requests. Unlike a stopped server, a client waits
    for its read timeout (the minio client's is 120 s) instead of failing at once."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._sock: socket.socket | None = None

    def __enter__(self) -> BlackHole:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._sock = sock
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()  # the connections still waiting are reset
            self._sock = None


def remount(mount: Path, *, read_only: bool) -> None:
    """Remount a tmpfs read-only (writes and deletes fail with EROFS, as on a failing disk) or read-write."""
    subprocess.run(["mount", "-o", f"remount,{'ro' if read_only else 'rw'}", str(mount)], check=True,
                   capture_output=True, timeout=15)


class WorkerProcess:
    """An ``echo4d worker`` subprocess (solo or prefork) with its log in a file."""

    def __init__(self, env: dict[str, str], log: Path, *, pool: str = "prefork", concurrency: int = 1) -> None:
        self.log = log
        full = {**os.environ, **env, "ECHO4D_WORKER_POOL": pool, "ECHO4D_WORKER_CONCURRENCY": str(concurrency),
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([str(Path(sys.executable).parent / "echo4d"), "worker"], cwd=ROOT,
                                         env=full, stdout=out, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def pid_of_worker_id(worker_id: str | None) -> int | None:
    """``host:pid`` (what a Celery worker process writes into the job row) → pid."""
    if not worker_id:
        return None
    try:
        return int(worker_id.split(":")[1])
    except (IndexError, ValueError):
        return None


class LiveServer:
    """uvicorn serving ``app`` on loopback from a thread (a real HTTP/1.1 parser in front of the app)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
                                lifespan="on", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        wait_until(lambda: self.server.started, 30, 0.05, "uvicorn started")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


# ----------------------------------------------------------------------------- inputs
FAKE_PATIENT = {
    "PatientName": "Quixote^Dulcinea^RelPHI4417",
    "PatientID": "RELPID-55102938",
    "PatientBirthDate": "19380911",
    "AccessionNumber": "RELACC-8812034",
    "OtherPatientIDs": "RELOPID-909193",
    "ReferringPhysicianName": "Sancho^Panza^RelPHI",
    "InstitutionName": "Relisource General PHI Hospital",
    "StudyInstanceUID": "1.2.826.0.1.3680043.8.498.4417551029381234",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.8.498.4417551029389876",
}


def phi_needles() -> list[str]:
    """Every planted value, and distinctive pieces of them, to search for (case-insensitive)."""
    pieces = {"Quixote", "Dulcinea", "RelPHI4417", "55102938", "19380911", "8812034", "909193", "Sancho",
              "Relisource", "4417551029381234", "4417551029389876"}
    return sorted(set(FAKE_PATIENT.values()) | pieces)


def find_needles(blob: bytes | str, needles: list[str]) -> list[str]:
    text = blob.decode("latin-1") if isinstance(blob, bytes) else blob
    low = text.lower()
    return [n for n in needles if n.lower() in low]


def npy_header_only(shape: tuple[int, ...]) -> bytes:
    """A .npy file whose header declares ``shape`` (uint8) but which holds only 64 bytes of data."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\x01" * 64


def run_until_terminal(ctx: Any, job_id: str, max_runs: int = 10) -> Any:
    """Call ``run_job`` the way a worker's retries would (TransientError → run again) until it ends."""
    from jobcore.errors import TransientError
    from worker.runner import Outcome, run_job

    outcome = None
    for _ in range(max_runs):
        try:
            outcome = run_job(ctx, job_id)
        except TransientError:
            continue
        if outcome is not Outcome.BUSY:
            return outcome
    raise AssertionError(f"job {job_id} not finished after {max_runs} runs ({outcome})")


def good_study(seed: int) -> bytes:
    """A small valid 2-view study whose bytes differ by ``seed`` (so idempotency keys map to distinct bodies)."""
    return study_zip_bytes(views=("A4C", "A2C"), n_frames=8, seed=seed)


def submit_body(api: Any, body: bytes, key: str) -> str:
    """POST ``body`` with the smoke profile under Idempotency-Key ``key``; returns the job id (asserts 202)."""
    r = api.post_study(body, data={"profile": "smoke"}, headers={"Idempotency-Key": key})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def peak_rss_mb(call: Callable[[], Any]) -> tuple[Any, float]:
    """(``call()``, how far this process's peak RSS rose above its RSS before the call, in MB).

    The kernel's high-water mark (VmHWM) is reset first (``clear_refs`` 5), so the figure is this call's peak,
    not the largest the test session ever reached."""
    def status(field: str) -> float:
        text = Path("/proc/self/status").read_text()
        match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
        assert match, field
        return int(match.group(1)) / 1024.0

    Path("/proc/self/clear_refs").write_text("5")
    before = status("VmRSS")
    out = call()
    return out, status("VmHWM") - before


def uid_running_over_patient(raw: bytes) -> bytes:
    """``raw`` (a :func:`dicom_bytes` file, explicit VR little endian) with the SOPInstanceUID's length stretched
    over the following elements up to the end of PatientID: a reader quoting the 'UID' quotes the patient."""
    import struct

    at = raw.find(struct.pack("<HH", 0x0008, 0x0018) + b"UI", 132 + 12)  # past the file meta's 0002,0003
    end = raw.find(FAKE_PATIENT["PatientID"].encode()) + len(FAKE_PATIENT["PatientID"])
    assert at > 0 and end > at, "the file holds no SOPInstanceUID before PatientID"
    length = end - (at + 8)
    return raw[: at + 6] + struct.pack("<H", length + length % 2) + raw[at + 8 :]


# ----------------------------------------------------------------------------- private servers to restart
class PrivateRedis:
    """A Redis server of this test module alone (its own port, no persistence): restarting it loses its queued
    messages like a production restart would, without touching the machine's shared Redis."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            out = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True,
                                 timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.stdout.strip() == "PONG"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", tempfile.gettempdir()],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.ping, 20, 0.05, "private redis answering PING")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True, timeout=15)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        wait_until(lambda: not port_open(self.port), 15, 0.05, "private redis down")

    def restart(self) -> None:
        """Without persistence: every queued and unacked message is gone."""
        self.stop()
        self.start()


class PrivatePostgres:
    """A PostgreSQL cluster of this test module alone (``initdb`` in a temporary folder, its own port, trust
    authentication, run as the ``postgres`` OS user when the tests run as root): restarting it under load does
    not disconnect anyone else's tests from the machine's shared server."""

    def __init__(self) -> None:
        self.port = free_port()
        root = self.root = Path(tempfile.mkdtemp(prefix="echo4d-test-pg-"))  # in /tmp: the OS user can reach it
        self.data = root / "pgdata"
        bindir = Path(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                                     check=True).stdout.strip())
        self._bin = bindir
        self._as_owner: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            import pwd

            pw = pwd.getpwnam("postgres")
            self._as_owner = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]
            os.chown(root, pw.pw_uid, pw.pw_gid)
        self._run(["initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, args: list[str]) -> None:
        # output to a file, never a pipe: the postmaster inherits it and would keep the pipe open
        with tempfile.TemporaryFile() as out:
            done = subprocess.run([*self._as_owner, str(self._bin / args[0]), *args[1:]], stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=subprocess.STDOUT, timeout=120)
            if done.returncode != 0:
                out.seek(0)
                raise RuntimeError(f"{args[0]} failed: {out.read().decode(errors='replace')[-500:]}")

    def ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", connect_timeout=2) as c:
                c.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def start(self) -> None:
        self._run(["pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-l", str(self.data / "server.log"), "-o",
                   f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
        wait_until(self.ready, 60, 0.1, "private postgres accepting connections")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(["pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"])

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def remove(self) -> None:
        import shutil

        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
