"""Helpers for the service and worker tests (plain functions and classes; fixtures live in conftest.py)."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import zipfile
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np

from service.loadgen import ellipse_cine


def stop_process(proc: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    """Ctrl-C a server subprocess (its graceful shutdown); kill it if it has not exited within ``timeout``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def log_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines in captured stderr."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- study bundles from numpy
def study_zip_bytes(views: tuple[str, ...] = ("A4C", "A2C", "A3C"), n_frames: int = 10, *,
                    manifest_patch: dict[str, Any] | None = None, extra_members: dict[str, bytes] | None = None,
                    seed: int = 0) -> bytes:
    """A valid ``echo4d-study/1`` zip built in memory (``seed`` varies the shape so bodies differ)."""
    buf = io.BytesIO()
    doc: dict[str, Any] = {"format": "echo4d-study/1", "views": {}}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, view in enumerate(views):
            masks = ellipse_cine(n_frames, width_scale=1.0 - 0.05 * i + 0.01 * seed)
            npy = io.BytesIO()
            np.save(npy, masks)
            zf.writestr(f"{view}.npy", npy.getvalue())
            doc["views"][view] = {"masks": f"{view}.npy", "pixel_spacing_mm": [1.2, 1.2], "fps": 30.0}
        doc.update(manifest_patch or {})
        zf.writestr("study.json", json.dumps(doc))
        for name, raw in (extra_members or {}).items():
            zf.writestr(name, raw)
    return buf.getvalue()




# ----------------------------------------------------------------------------- the API under test
class ApiHarness:
    """A running app (TestClient), its services and an API key of tenant ``t1``."""

    def __init__(self, client: Any, services: Any, key: str) -> None:
        self.client = client
        self.services = services
        self.key = key

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def new_key(self, tenant: str) -> str:
        from service.auth import create_key

        return create_key(self.services.tenants, tenant, self.services.pepper)[1]

    def post_study(self, body: bytes, *, key: str | None = None, headers: dict[str, str] | None = None,
                   data: dict[str, str] | None = None) -> Any:
        return self.client.post("/v1/studies", files={"file": ("study.zip", body, "application/zip")},
                                data=data or {}, headers={**self.auth(key), **(headers or {})})


def succeed_with(api: ApiHarness, job_id: str, blobs: dict[str, bytes]) -> None:
    """Finish ``job_id`` as succeeded with ``blobs`` stored as its artifacts (public name → bytes)."""
    from datetime import timedelta

    from jobcore.artifacts import ARTIFACTS
    from jobcore.db.models import JobStatus, utcnow
    from jobcore.storage import output_key

    jobs, store = api.services.jobs, api.services.store
    now = utcnow()
    claim = jobs.claim(job_id, "test", now, now - timedelta(seconds=60))
    assert claim is not None
    meta = {}
    for name, raw in blobs.items():
        obj, ctype = ARTIFACTS[name]
        info = store.put_stream(output_key(job_id, obj), io.BytesIO(raw), length=len(raw), content_type=ctype)
        meta[name] = {"key": info.key, "size": info.size, "etag": info.etag, "content_type": ctype}
    assert jobs.finish(claim, JobStatus.SUCCEEDED, artifacts=meta)


def embedded_settings(data_dir: Path, **overrides: Any) -> Any:
    """Settings of an embedded service in ``data_dir`` with background threads off unless asked."""
    from jobcore.settings import Settings

    values: dict[str, Any] = {"data_dir": data_dir, "embedded_worker": False, "reconcile_interval_s": 0,
                              "rate_limit_per_minute": 0, "auth_failures_per_minute": 0, "log_json": True,
                              "api_key_pepper": "test-pepper"}
    values.update(overrides)
    return Settings(**values)


def broken_study_zip_bytes() -> bytes:
    """Passes the API's cheap checks (valid manifest, members present) but fails ingest: an empty frame."""
    buf = io.BytesIO()
    masks = ellipse_cine(6)
    masks[3] = 0
    npy = io.BytesIO()
    np.save(npy, masks)
    doc = {"format": "echo4d-study/1",
           "views": {"A4C": {"masks": "A4C.npy", "pixel_spacing_mm": [1.2, 1.2], "fps": 30.0}}}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("A4C.npy", npy.getvalue())
        zf.writestr("study.json", json.dumps(doc))
    return buf.getvalue()


def worker_context(services: Any, worker_id: str = "test-worker") -> Any:
    """A WorkerContext sharing ``services`` (the same run_job path as the embedded worker child, in-process)."""
    from jobcore.webhooks import WebhookSender
    from worker.model_cache import ModelCache
    from worker.runner import WorkerContext

    s = services.settings
    return WorkerContext(settings=s, jobs=services.jobs, store=services.store, metrics=services.metrics,
                         models=ModelCache(s.device, s.prior_checkpoint, s.segmenter, s.torch_threads),
                         worker_id=worker_id,
                         webhooks=WebhookSender(s, services.jobs, services.metrics))


def reconstruction_ready() -> str | None:
    """None when a real reconstruction can run here; else the reason it cannot (for an explicit skip)."""
    try:
        import models.export.writer
        import models.recon.pipeline  # noqa: F401
        from models.prior.checkpoint import DEFAULT_CHECKPOINT
    except ImportError as exc:
        return f"reconstruction pipeline not importable yet ({exc.name})"
    if not Path(DEFAULT_CHECKPOINT).is_file():
        return f"the shape prior checkpoint {Path(DEFAULT_CHECKPOINT).name} is not in models/checkpoints yet"
    return None
