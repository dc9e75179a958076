"""The Celery application, configured from Settings (no module-level app: build it with :func:`create_celery`).

Design choices against Celery's known traps:
- JSON only; results ignored (the job table holds state).
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a task whose worker dies is redelivered;
  the job table's attempt counter stops a study that kills its worker from looping forever.
- prefetch 1: a GPU worker holds one job at a time, others stay available to other workers.
- Redis ``visibility_timeout`` above the hard time limit, or Redis would redeliver a task that is
  still legitimately running (Settings enforces this). With RabbitMQ, raise the server's
  ``consumer_timeout`` above the hard limit instead.
- one solo-pool process per GPU by default; torch/CUDA are initialised only inside the process
  that runs the job (never in a prefork parent).
"""

from __future__ import annotations

from celery import Celery

from jobcore.queue import RECONSTRUCT_TASK
from jobcore.settings import Settings


def create_celery(settings: Settings) -> Celery:
    if settings.broker_url is None:
        raise ValueError("a Celery app needs ECHO4D_BROKER_URL (redis://... or amqp://...)")
    app = Celery("echo4d", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.job_soft_time_limit_s,
        task_time_limit=settings.job_hard_time_limit_s,
        task_default_queue=settings.queue_name,
        task_routes={RECONSTRUCT_TASK: {"queue": settings.queue_name}},
        task_create_missing_queues=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        broker_heartbeat=0,  # AMQP heartbeats cannot be answered while a solo worker computes
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        enable_utc=True,
    )
    return app
