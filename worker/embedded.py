"""The embedded worker: a child process of the API running the same ``run_job`` as Celery.

Why a child process: a reconstruction is CPU-bound (torch), and inside the API process it competed with the
request handlers for the GIL, so a busy worker cost API latency. The child imports torch and loads the prior
and segmenter once; the API process never imports them.

Why no broker: the job table already is a queue (``next_claimable`` + the atomic claim), so the child claims
the oldest queued job and exercises exactly the distributed claim/heartbeat/attempt code.

How it is wired (one composition root, ``cli.composition``, hands it to ``service.app``'s lifespan, which starts
and stops it):

* :class:`EmbeddedWorkerProcess` (a supervisor thread in the API) starts ``python -m worker.embedded`` with a
  pipe on its stdin and writes the pickled :class:`~jobcore.settings.Settings` into it first (length-prefixed),
  so the child builds its own clients (database engine, object store, ``ModelCache``) from the same settings.
* Wake-up: ``LocalQueue.enqueue`` sets a ``threading.Event``; the supervisor relays it as one byte on the
  pipe. The child also polls the job table every ``POLL_S`` seconds, so a lost wake-up only delays a job.
* Parent death: the child reads the pipe until EOF. EOF (the API stopped, or was killed: the kernel closes
  its end) makes the child stop and exit, so it never outlives the API. SIGINT is ignored in the child: a
  Ctrl-C in the terminal reaches the API, whose shutdown closes the pipe.
* Crash: when the child exits on its own, the supervisor marks the job it was running as an orphan
  (``on_crash``: the reconciler's ``recover_orphans``, the same as at an embedded start) and starts a new
  child after a back-off (0.5 s doubling to 30 s while it keeps crashing within a minute).
* SQLite: both processes open the same file in WAL mode with a 30 s busy timeout and ``BEGIN IMMEDIATE``
  (``jobcore.db.engine``), so writers queue instead of failing.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from jobcore.settings import Settings
    from worker.runner import WorkerContext

log = structlog.get_logger(__name__)
POLL_S = 0.5
_HEADER = struct.Struct(">I")
_STOP_GRACE_S = 10.0


class EmbeddedWorker(threading.Thread):
    """The claim loop (runs in the child): claim the oldest queued job, run it, wait for a wake-up or ``poll_s``."""

    def __init__(self, ctx: WorkerContext, wakeup: threading.Event, poll_s: float = POLL_S) -> None:
        super().__init__(name="echo4d-embedded-worker", daemon=True)
        self._ctx = ctx
        self._wakeup = wakeup
        self._poll_s = poll_s
        self._stop_event = threading.Event()
        self.jobs_run = 0

    def run(self) -> None:
        from jobcore.db.models import utcnow
        from jobcore.errors import TransientError
        from worker.runner import backoff_s, run_job

        failures = 0
        while not self._stop_event.is_set():
            try:
                job_id = self._ctx.jobs.next_claimable(utcnow())
                if job_id is None:
                    self._wakeup.wait(self._poll_s)
                    self._wakeup.clear()
                    continue
                run_job(self._ctx, job_id)
                self.jobs_run += 1
                failures = 0
            except TransientError as exc:
                failures += 1
                log.warning("embedded_worker_retry", code=exc.code.value)
                self._stop_event.wait(backoff_s(failures, self._ctx.settings.retry_backoff_max_s))
            except Exception as exc:  # keep the loop alive; the job (if claimed) was already marked
                log.error("embedded_worker_error", error_type=type(exc).__name__, exc_info=exc)
                time.sleep(1.0)

    def stop(self, timeout: float = _STOP_GRACE_S) -> None:
        self._stop_event.set()
        self._wakeup.set()
        self.join(timeout)


class EmbeddedWorkerProcess(threading.Thread):
    """Supervisor in the API process: starts the child, relays wake-ups, restarts it when it dies, stops it."""

    def __init__(self, settings: Settings, wakeup: threading.Event,
                 on_crash: Callable[[], object] | None = None, max_backoff_s: float = 30.0) -> None:
        super().__init__(name="echo4d-embedded-supervisor", daemon=True)
        self._payload = pickle.dumps(settings)
        self._wakeup = wakeup
        self._on_crash = on_crash
        self._max_backoff_s = max_backoff_s
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        self._spawn()
        super().start()

    def _spawn(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            proc = subprocess.Popen([sys.executable, "-m", "worker.embedded"], stdin=subprocess.PIPE)
            assert proc.stdin is not None
            try:
                proc.stdin.write(_HEADER.pack(len(self._payload)) + self._payload)
                proc.stdin.flush()
            except OSError:  # it died at once; run() sees the exit and restarts it
                pass
            self._proc, self._started_at = proc, time.monotonic()
        log.info("embedded_worker_started", pid=proc.pid)

    def run(self) -> None:
        quick_crashes = 0
        while not self._stopping.is_set():
            if self._wakeup.wait(POLL_S):
                self._wakeup.clear()
                self._poke()
            proc = self._proc
            if proc is None or proc.poll() is None or self._stopping.is_set():
                continue
            quick_crashes = quick_crashes + 1 if time.monotonic() - self._started_at < 60 else 1
            delay = min(self._max_backoff_s, 0.5 * 2 ** (quick_crashes - 1))
            log.warning("embedded_worker_exited", returncode=proc.returncode, restart_in_s=delay)
            if self._on_crash is not None:
                try:
                    self._on_crash()  # its running job is an orphan: requeue it (or fail it when out of attempts)
                except Exception as exc:  # the database may be briefly unreachable; the next start recovers it
                    log.error("embedded_worker_recover_failed", error_type=type(exc).__name__)
            if self._stopping.wait(delay):
                break
            self._spawn()
            self.restarts += 1

    def _poke(self) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            return
        try:
            proc.stdin.write(b"\x01")
            proc.stdin.flush()
        except (OSError, ValueError):  # the child died (restarted by run) or the pipe is closed (stopping)
            pass

    def stop(self, timeout: float = _STOP_GRACE_S + 5.0) -> None:
        """Close the pipe (the child finishes its loop and exits), wait, then terminate/kill it if needed."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        self._wakeup.set()
        if self.is_alive():
            self.join(timeout)
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.info("embedded_worker_stopped", pid=proc.pid, returncode=proc.returncode)


def _read_settings(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    return pickle.loads(stream.read(size))  # our parent's own pipe, written by EmbeddedWorkerProcess


def main() -> int:
    """Child entry point (``python -m worker.embedded``): read Settings, run the claim loop until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stream: Any = sys.stdin.buffer  # a BufferedReader (read1)
    settings = _read_settings(stream)
    if settings is None:
        return 1
    from jobcore.logging import configure_logging
    from worker.tasks import build_worker_context

    configure_logging(settings)
    wakeup = threading.Event()
    worker = EmbeddedWorker(build_worker_context(settings), wakeup)
    worker.start()
    log.info("embedded_worker_ready", pid=os.getpid())
    while True:
        chunk = stream.read1(64)  # returns as soon as a wake-up byte arrives; b"" at EOF (the API is gone)
        if not chunk:
            break
        wakeup.set()
    worker.stop()
    if worker.is_alive():  # mid-job at shutdown: the next start recovers it (recover_orphans), as after a kill
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
