"""Start a Celery worker process for Echo4D (what ``echo4d worker`` runs), with its /metrics endpoint.

Solo/threads pools: one process, its own registry served on ``worker_metrics_port``.
Prefork: prometheus-client multiprocess mode (the CLI wipes the folder and sets it before
prometheus_client is imported); the parent serves the merged view and a child's files are
marked dead when it exits. A solo pool cannot enforce Celery's time limits, so a watchdog
ends the process past the hard limit; the job's stale heartbeat then lets the reconciler
retry it (counting the attempt) or fail it.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import structlog

from jobcore.celery_app import create_celery
from jobcore.metrics import Metrics
from jobcore.settings import Settings
from worker.tasks import WorkerRuntime, register_tasks

log = structlog.get_logger(__name__)


def _start_metrics_server(settings: Settings, metrics: Metrics, multiprocess: bool) -> None:
    if settings.worker_metrics_port <= 0:
        return
    from prometheus_client import CollectorRegistry, start_http_server

    registry = metrics.registry
    if multiprocess:
        from prometheus_client import multiprocess as mp

        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(settings.worker_metrics_port, addr=settings.host, registry=registry)
    log.info("worker_metrics", port=settings.worker_metrics_port, multiprocess=multiprocess)


def _install_signals(settings: Settings, multiprocess: bool) -> None:
    from celery.signals import task_postrun, task_prerun, worker_process_shutdown

    if multiprocess:
        @worker_process_shutdown.connect(weak=False)  # type: ignore[untyped-decorator]
        def _mark_dead(pid: int | None = None, **_: Any) -> None:
            from prometheus_client import multiprocess as mp

            mp.mark_process_dead(pid or os.getpid())  # type: ignore[no-untyped-call]

    if settings.worker_pool != "solo":
        return
    timers: dict[str, threading.Timer] = {}

    def _hard_limit_exceeded() -> None:
        log.error("hard_time_limit_exceeded", limit_s=settings.job_hard_time_limit_s)
        os._exit(70)  # the broker redelivers; the job table counts the attempt

    @task_prerun.connect(weak=False)  # type: ignore[untyped-decorator]
    def _arm(task_id: str | None = None, **_: Any) -> None:
        timer = threading.Timer(settings.job_hard_time_limit_s, _hard_limit_exceeded)
        timer.daemon = True
        timers[str(task_id)] = timer
        timer.start()

    @task_postrun.connect(weak=False)  # type: ignore[untyped-decorator]
    def _disarm(task_id: str | None = None, **_: Any) -> None:
        timer = timers.pop(str(task_id), None)
        if timer is not None:
            timer.cancel()


def run_worker(settings: Settings, *, multiprocess_metrics: bool = False) -> None:
    """Block running a Celery worker on ``settings.queue_name``."""
    metrics = Metrics()
    app = create_celery(settings)
    register_tasks(app, WorkerRuntime(settings, metrics=metrics))
    _install_signals(settings, multiprocess_metrics)
    _start_metrics_server(settings, metrics, multiprocess_metrics)
    argv = ["worker", f"--pool={settings.worker_pool}", f"--concurrency={settings.worker_concurrency}",
            f"--queues={settings.queue_name}", f"--loglevel={settings.log_level}",
            f"--hostname=echo4d-{settings.queue_name}@{socket.gethostname()}.{os.getpid()}",
            "--without-gossip", "--without-mingle"]
    app.worker_main(argv)
