"""``Settings``: the one typed place that reads the environment (prefix ``ECHO4D_``).

Everything else receives a ``Settings`` instance (or the clients built from it) as an
argument. With no variable set, the defaults describe the embedded single-machine mode:
SQLite and a local folder under ``./var``, an in-process worker, plain HTTP on 127.0.0.1.
Every field is documented in ``docs/service.md`` (the table is checked by a test).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.device import DEVICE_PATTERN
from models.profiles import DEFAULT_PROFILE, ProfileName


class Settings(BaseSettings):
    """Configuration of the API, the worker and the CLI. Field ``x`` is read from ``ECHO4D_X``."""

    model_config = SettingsConfigDict(env_prefix="ECHO4D_", extra="ignore", frozen=True)

    # --- where state lives ---------------------------------------------------------------
    data_dir: Path = Field(default=Path("var"), description="Embedded mode: folder for the SQLite file and objects.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/echo4d.sqlite3 "
        "(distributed: postgresql+psycopg://user:pw@host:5432/db).",
    )
    db_pool_size: int = Field(default=5, ge=1, description="PostgreSQL connection pool size per process.")
    store_backend: Literal["local", "minio"] = Field(default="local", description="Object store: a folder or MinIO/S3.")
    store_dir: Path | None = Field(default=None, description="Local store folder; default <data_dir>/objects.")
    s3_endpoint: str = Field(default="127.0.0.1:9000", description="MinIO host:port (no scheme).")
    s3_access_key: str = Field(default="minioadmin", description="MinIO access key.")
    s3_secret_key: SecretStr = Field(default=SecretStr("minioadmin"), description="MinIO secret key.")
    s3_bucket: str = Field(default="echo4d", description="Bucket holding inputs/ and outputs/ (created on start).")
    s3_secure: bool = Field(default=False, description="Use HTTPS to reach MinIO.")
    s3_region: str = Field(default="us-east-1", description="Region used to sign requests (MinIO ignores it).")
    s3_public_endpoint: str | None = Field(
        default=None, description="host:port clients use to reach MinIO for presigned URLs; default s3_endpoint.",
    )
    s3_presign: bool = Field(default=True, description="Answer artifact downloads with a 307 to a presigned URL.")
    presign_ttl_s: int = Field(default=300, ge=10, le=7 * 24 * 3600, description="Lifetime of presigned URLs.")

    # --- queue and worker ----------------------------------------------------------------
    broker_url: str | None = Field(
        default=None, description="Celery broker (redis://... or amqp://...). Unset: in-process worker (embedded).",
    )
    queue_name: str = Field(default="gpu", description="Celery queue the reconstruction tasks are routed to.")
    embedded_worker: bool = Field(default=True,
                                  description="Without a broker, run a worker child process beside the API.")
    worker_pool: Literal["solo", "prefork", "threads"] = Field(
        default="solo", description="Celery pool (solo per GPU).",
    )
    worker_concurrency: int = Field(default=1, ge=1, description="Celery worker concurrency (prefork/threads).")
    worker_metrics_port: int = Field(default=9101, ge=0, description="Port of the worker's /metrics (0: none).")
    metrics_multiproc_dir: Path | None = Field(
        default=None, description="prometheus-client multiprocess folder for a prefork worker (wiped at start).",
    )
    scratch_dir: Path | None = Field(
        default=None, description="Folder of the jobs' scratch copies (swept of abandoned ones); default "
        "<data_dir>/scratch.")
    prior_checkpoint: Path | None = Field(
        default=None, description="Shape prior checkpoint for the workers; default: the one shipped in the package.",
    )
    segmenter: Path | None = Field(
        default=None, description="B-mode LV segmenter for the workers (an echo4d checkpoint, TorchScript or .pt2 "
        "file: a site's model); default: the one shipped in the package. Loaded once per worker process.",
    )
    torch_threads: int = Field(
        default=0, ge=0, description="torch CPU threads per worker process (0: torch's own default, one per core). "
        "With the prefork pool, about cores / concurrency.",
    )
    device: str = Field(default="auto", pattern=DEVICE_PATTERN.pattern,
                        description="torch device for reconstruction: auto, cpu, cuda, cuda:N.")
    default_profile: ProfileName = Field(
        default=DEFAULT_PROFILE, description="Reconstruction profile used when a submission names none.",
    )
    job_max_attempts: int = Field(default=3, ge=1, le=20, description="Claims of one job before it is failed.")
    job_soft_time_limit_s: int = Field(default=1800, ge=5, description="Soft limit of one job (cooperative stop).")
    job_hard_time_limit_s: int = Field(default=2100, ge=10, description="Hard limit: the job's process is ended.")
    broker_visibility_timeout_s: int | None = Field(
        default=None, description="Redis visibility timeout; default hard limit + 600 s (must exceed it).",
    )
    heartbeat_interval_s: float = Field(default=10.0, gt=0, description="How often a running job heartbeats.")
    heartbeat_stale_s: float = Field(default=90.0, gt=0, description="A running job silent this long is reclaimed.")
    requeue_after_s: float = Field(default=300.0, gt=0, description="Re-enqueue a queued job the broker lost after.")
    reconcile_interval_s: float = Field(default=30.0, ge=0, description="Reconciler period in the API (0: off).")
    retry_backoff_max_s: int = Field(default=300, ge=1, description="Cap of the exponential retry backoff.")
    retention_days: float = Field(
        default=0.0, ge=0, description="Erase finished jobs (inputs, outputs, record) this many days after they "
        "ended (0: keep them).")
    min_free_disk_mb: int = Field(
        default=256, ge=0, description="/readyz answers 503 when the SQLite or local-store disk has less free (MiB).")
    orphan_grace_s: float = Field(
        default=3600.0, ge=1,
        description="Inputs/outputs with no job row are deleted once this old (the sweep runs every grace/4).",
    )

    # --- API -----------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="`echo4d serve` bind address.")
    port: int = Field(default=8000, ge=0, le=65535, description="`echo4d serve` port.")
    public_base_url: str | None = Field(
        default=None, description="Absolute base URL clients reach the API at (STOW-RS RetrieveURL); default: "
        "from the request.")
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="Serve the API's /metrics on this port only, not on the API port "
        "(0: /metrics on the API port).")
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1024, description="Largest request body (413 above).")
    max_upload_files: int = Field(default=1000, ge=1, description="Most files in one upload or STOW-RS request.")
    max_zip_entries: int = Field(default=256, ge=1, description="Most members in an uploaded study zip.")
    max_uncompressed_bytes: int = Field(default=2 * 1024**3, ge=1024, description="Total uncompressed zip size cap.")
    max_compression_ratio: float = Field(default=1024.0, gt=1, description="Per-member zip ratio cap (zip bombs).")
    rate_limit_per_minute: float = Field(default=600.0, ge=0, description="Requests per API key per minute (0: off).")
    rate_limit_burst: int = Field(default=60, ge=1, description="Requests a key may send at once.")
    auth_failures_per_minute: float = Field(
        default=30.0, ge=0, description="Failed authentications per key id and per client address per minute "
        "before 429 (0: off).")
    auth_failure_burst: int = Field(default=20, ge=1, description="Failed authentications allowed at once.")
    body_idle_timeout_s: float = Field(default=30.0, gt=0, description="408 when an upload sends no bytes this long.")
    api_key_pepper: SecretStr = Field(default=SecretStr(""), description="Server secret mixed into API key hashes.")
    webhook_secret: SecretStr | None = Field(default=None, description="HMAC key signing webhooks (unset: disabled).")
    webhook_allow_private: bool = Field(default=False, description="Allow webhooks to loopback/private addresses.")
    webhook_max_attempts: int = Field(default=8, ge=1, description="Deliveries tried before a webhook is given up.")
    webhook_timeout_s: float = Field(default=10.0, gt=0, description="Timeout of one webhook POST.")

    # --- DICOM results back to PACS (pushed by the worker after upload; GET /v1/jobs/{id}/dicom always) ---
    dicom_push_host: str | None = Field(default=None, description="C-STORE peer host (unset: no C-STORE push).")
    dicom_push_port: int = Field(default=104, ge=1, le=65535, description="C-STORE peer port.")
    dicom_push_called_ae: str = Field(default="ANY-SCP", min_length=1, max_length=16,
                                      description="AE title of the C-STORE peer.")
    dicom_push_calling_ae: str = Field(default="ECHO4D", min_length=1, max_length=16,
                                       description="Echo4D's own AE title.")
    dicom_stow_url: str | None = Field(default=None, pattern=r"^https?://\S+$",
                                       description="DICOMweb STOW-RS URL the results are POSTed to, "
                                       "e.g. https://pacs/dicom-web/studies (unset: no STOW-RS push).")
    dicom_stow_token: SecretStr | None = Field(default=None, description="Bearer token for the STOW-RS endpoint.")
    dicom_push_timeout_s: float = Field(default=30.0, gt=0, description="Timeout of each push (connect, each reply).")

    # --- logging -------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Log level.")
    log_json: bool = Field(default=True, description="JSON log lines (false: human-readable console lines).")

    @field_validator("database_url", "broker_url", "public_base_url", "s3_public_endpoint", "store_dir",
                     "scratch_dir", "prior_checkpoint", "segmenter", "metrics_multiproc_dir",
                     "broker_visibility_timeout_s", "webhook_secret", "dicom_push_host", "dicom_stow_url",
                     "dicom_stow_token", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``ECHO4D_BROKER_URL=`` means unset (embedded), not a broker at the empty URL."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_limits(self) -> Settings:
        if self.job_hard_time_limit_s <= self.job_soft_time_limit_s:
            raise ValueError("job_hard_time_limit_s must be larger than job_soft_time_limit_s")
        if self.visibility_timeout_s <= self.job_hard_time_limit_s:
            raise ValueError("broker_visibility_timeout_s must exceed job_hard_time_limit_s")
        if self.heartbeat_stale_s <= 2 * self.heartbeat_interval_s:
            raise ValueError("heartbeat_stale_s must be more than twice heartbeat_interval_s")
        return self

    # --- derived values --------------------------------------------------------------------
    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'echo4d.sqlite3').as_posix()}"

    @property
    def resolved_store_dir(self) -> Path:
        return self.store_dir or self.data_dir / "objects"

    @property
    def resolved_scratch_dir(self) -> Path:
        return self.scratch_dir or self.data_dir / "scratch"

    @property
    def visibility_timeout_s(self) -> int:
        return self.broker_visibility_timeout_s or self.job_hard_time_limit_s + 600

    @property
    def embedded(self) -> bool:
        """True when jobs run in the API's own child worker process (no broker configured)."""
        return self.broker_url is None


def export_prometheus_multiproc_dir(path: Path) -> None:
    """Point prometheus-client at a multiprocess folder; call before it is imported (prefork)."""
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def environment_without_settings() -> dict[str, str]:
    """This process's environment minus every ``ECHO4D_`` variable (for a child that must use defaults)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ECHO4D_")}
