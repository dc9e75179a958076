"""Prometheus metrics (``echo4d_`` prefix, base units, ``_total`` counters, no job/patient labels).

One :class:`Metrics` object is built per process (API app or worker) and injected. The API
adds a scrape-time collector for jobs by status and queue depth; a prefork worker uses
prometheus-client's multiprocess mode (see ``worker/worker_main.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_STAGE_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # no `_created` series beside every counter and histogram (Prometheus ignores them)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        r = self.registry = registry if registry is not None else CollectorRegistry()
        if registry is None:  # the process's CPU, memory, file descriptors and Python version
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
        self.http_requests = Counter("echo4d_http_requests", "HTTP requests by route and status.",
                                     ["method", "route", "status"], registry=r)
        self.http_latency = Histogram("echo4d_http_request_duration_seconds", "HTTP request latency.",
                                      ["method", "route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.jobs_submitted = Counter("echo4d_jobs_submitted", "Jobs accepted by the API.", ["input_kind"],
                                      registry=r)
        self.jobs_finished = Counter("echo4d_jobs_finished", "Jobs that reached a terminal state.", ["status"],
                                     registry=r)
        self.job_duration = Histogram("echo4d_job_duration_seconds", "Wall time of one job attempt.", ["status"],
                                      buckets=_STAGE_BUCKETS, registry=r)
        self.stage_duration = Histogram("echo4d_job_stage_duration_seconds", "Wall time of one pipeline stage.",
                                        ["stage"], buckets=_STAGE_BUCKETS, registry=r)
        self.worker_busy = Gauge("echo4d_worker_busy", "1 while a worker process runs a job.",
                                 multiprocess_mode="livesum", registry=r)
        self.upload_bytes = Counter("echo4d_upload_bytes", "Bytes of study input accepted.", registry=r)
        self.webhook_deliveries = Counter("echo4d_webhook_deliveries", "Webhook delivery tries by outcome.",
                                          ["outcome"], registry=r)
        self.reconciler_actions = Counter("echo4d_reconciler_actions", "Repairs done by the reconciler.",
                                          ["action"], registry=r)


class StateCollector(Collector):
    """Scrape-time gauges: jobs by status (from the table) and queue depth (from the broker)."""

    def __init__(self, counts: Callable[[], dict[str, int]], depth: Callable[[], int | None], queue: str) -> None:
        self._counts = counts
        self._depth = depth
        self._queue = queue

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily("echo4d_jobs", "Jobs in the job table by status.", labels=["status"])
        try:
            for status, n in sorted(self._counts().items()):
                jobs.add_metric([status], n)
        except Exception:  # a scrape must not fail because the database blinked
            pass
        yield jobs
        depth = GaugeMetricFamily("echo4d_queue_depth", "Messages waiting in the broker queue.", labels=["queue"])
        try:
            d = self._depth()
            if d is not None:
                depth.add_metric([self._queue], d)
        except Exception:
            pass
        yield depth
