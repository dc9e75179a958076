"""Limits: a job past its time limit, oversized studies (rejected before anything is decoded), a full disk.

Embedded stack in this process (SQLite + folder store, the worker's ``run_job`` called directly, as the
embedded worker thread does), the real reconstruction with a smoke-trained shape prior.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dicom_kit import dicom_bytes
from reliability_kit import (
    assert_jobs_consistent,
    job_row,
    npy_header_only,
    run_until_terminal,
)
from service_testkit import ApiHarness, embedded_settings, study_zip_bytes, worker_context

from worker.runner import Outcome, run_job


@pytest.fixture()
def embedded(api_factory: Callable[..., ApiHarness], tmp_data_dir: Path, smoke_prior: Path,
             one_torch_thread: None) -> Callable[..., ApiHarness]:
    def make(**overrides: Any) -> ApiHarness:
        values: dict[str, Any] = {"prior_checkpoint": smoke_prior, "device": "cpu", "default_profile": "smoke"}
        return api_factory(embedded_settings(overrides.pop("data_dir", tmp_data_dir), **(values | overrides)))

    return make


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _bundle(members: dict[str, bytes], views: dict[str, str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    doc = {"format": "echo4d-study/1",
           "views": {v: {"masks": m, "pixel_spacing_mm": [1.2, 1.2], "fps": 30.0} for v, m in views.items()}}
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
        zf.writestr("study.json", json.dumps(doc))
    return buf.getvalue()


# ----------------------------------------------------------------------------- time limit
@pytest.mark.slow
def test_job_past_its_soft_time_limit_fails_with_time_limit_exceeded(embedded: Callable[..., ApiHarness]):
    api = embedded(job_soft_time_limit_s=5, job_hard_time_limit_s=10)
    # the default profile needs ~20 s for this study on one core: far beyond the 5 s limit
    r = api.post_study(study_zip_bytes(views=("A4C", "A2C"), n_frames=8, seed=11), data={"profile": "default"})
    job_id = r.json()["id"]
    start = time.monotonic()
    assert run_job(worker_context(api.services), job_id) is Outcome.FAILED
    elapsed = time.monotonic() - start
    job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
    assert job["error"]["code"] == "time_limit_exceeded" and job["stage"] == "reconstruct"
    assert job["attempts"] == 1  # not retried: the next attempt would run out of time the same way
    assert elapsed - 5 < 20, elapsed  # stopped at a progress report soon after the limit, not at the end
    print(f"FIGURE time-limit: soft limit 5 s, failed time_limit_exceeded after {elapsed:.1f} s")
    assert assert_jobs_consistent(api.services, [job_id]) == {"failed": 1}


# ----------------------------------------------------------------------------- oversized studies
def test_oversized_body_is_413_before_it_is_read(embedded: Callable[..., ApiHarness]):
    api = embedded(max_upload_bytes=64 * 1024)
    r = api.post_study(os.urandom(100 * 1024))
    assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "payload_too_large"
    assert api.services.jobs.counts_by_status()["queued"] == 0


@pytest.mark.parametrize("bomb", ["ratio", "total", "entries"])
def test_zip_bombs_are_refused_from_the_central_directory(embedded: Callable[..., ApiHarness], bomb: str):
    api = embedded(max_uncompressed_bytes=8 * 1024 * 1024, max_zip_entries=64)
    masks = io.BytesIO()
    np.save(masks, np.zeros((4, 32, 32), np.uint8))
    members = {"A4C.npy": masks.getvalue()}
    if bomb == "ratio":
        members["pad.bin"] = b"\0" * (48 * 1024 * 1024)  # deflates ~1000:1
    elif bomb == "total":
        members |= {f"pad{i}.bin": os.urandom(1024 * 1024) for i in range(9)}  # 9 MiB > 8 MiB total
    else:
        members |= {f"tiny/{i:05d}.txt": b"x" for i in range(500)}  # thousands of tiny files
    body = _bundle(members, {"A4C": "A4C.npy"})
    before = _maxrss_mb()
    r = api.post_study(body)
    assert r.status_code in (413, 422), r.text
    assert r.json()["code"] in ("unsafe_archive", "too_large")
    assert _maxrss_mb() - before < 64  # judged from the central directory, nothing expanded
    assert api.services.store.list_keys("inputs/") == []


@pytest.mark.parametrize("kind", ["npy_header", "dicom_header"])
def test_absurd_dimensions_fail_in_the_worker_before_decode(embedded: Callable[..., ApiHarness], kind: str):
    """Cheap API checks cannot see inside an .npy or a DICOM: the worker re-validates before allocating."""
    api = embedded()
    if kind == "npy_header":
        r = api.post_study(_bundle({"A4C.npy": npy_header_only((100_000, 4096, 4096))}, {"A4C": "A4C.npy"}))
    else:
        frames = np.zeros((2, 16, 16), np.uint8)
        raw = dicom_bytes(frames, Rows=65535, Columns=65535, NumberOfFrames=10_000)  # header says 43 TB
        r = api.client.post("/v1/studies", headers=api.auth(),
                            files=[("files", ("huge.dcm", raw, "application/dicom"))])
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    before = _maxrss_mb()
    assert run_job(worker_context(api.services), job_id) is Outcome.FAILED
    job = job_row(api.services, job_id)
    assert (job.error_code, job.attempts) == ("too_large", 1), (job.error_code, job.error_detail)
    assert _maxrss_mb() - before < 200
    assert assert_jobs_consistent(api.services, [job_id]) == {"failed": 1}


# ----------------------------------------------------------------------------- disk full
def _files_on(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("shape", ["bundle", "files"])
def test_store_full_at_submission_is_a_503_and_leaves_nothing_behind(embedded: Callable[..., ApiHarness],
                                                                      tiny_fs: Path, shape: str):
    api = embedded(store_dir=tiny_fs / "objects")
    if shape == "bundle":  # one 3 MiB object on a 2 MiB filesystem
        body = _bundle({"A4C.npy": npy_header_only((1, 8, 8)), "pad.bin": os.urandom(3 * 1024 * 1024)},
                       {"A4C": "A4C.npy"}, compression=zipfile.ZIP_STORED)
        r = api.post_study(body)
    else:  # the first of two 1.2 MiB files fits, the second does not
        parts = [("files", (f"v{i}.npy", os.urandom(1200 * 1024), "application/octet-stream")) for i in range(2)]
        r = api.client.post("/v1/studies", headers=api.auth(), files=parts)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "store_unavailable" and "full" in r.json()["detail"]
    assert "retry-after" in r.headers
    assert _files_on(tiny_fs / "objects") == []  # no partial object, metadata or temporary file
    assert not any((tiny_fs / "objects" / "inputs").glob("*"))  # nor an empty inputs/{id}/ folder
    assert api.services.jobs.counts_by_status()["queued"] == 0


@pytest.mark.slow
def test_store_full_when_uploading_outputs_fails_the_job_cleanly(embedded: Callable[..., ApiHarness],
                                                                tiny_fs: Path):
    api = embedded(store_dir=tiny_fs / "objects", job_max_attempts=2, retry_backoff_max_s=1)
    job_id = api.post_study(study_zip_bytes(views=("A4C", "A2C"), n_frames=8, seed=12)).json()["id"]
    inputs = _files_on(tiny_fs / "objects")
    free = os.statvfs(tiny_fs).f_bavail * os.statvfs(tiny_fs).f_frsize
    (tiny_fs / "filler").write_bytes(b"\0" * max(0, free - 16 * 1024))  # leave 16 KiB: less than one mesh
    ctx = worker_context(api.services)
    assert run_until_terminal(ctx, job_id) is Outcome.FAILED
    job = job_row(api.services, job_id)
    assert (job.status, job.error_code, job.attempts) == ("failed", "store_unavailable", 2)
    assert "full" in (job.error_detail or "")
    assert _files_on(tiny_fs / "objects") == inputs  # inputs intact; no output, metadata or temp file left
    assert assert_jobs_consistent(api.services, [job_id]) == {"failed": 1}


def test_store_full_between_data_and_metadata_leaves_nothing(tiny_fs: Path):
    """The object fits to the last block but its metadata does not: neither may stay behind half-written
    (before the fix, a 0-byte ``.meta`` JSON remained and the next ``stat`` of the key failed)."""
    from jobcore.errors import TransientError
    from jobcore.storage import LocalStore

    store = LocalStore(tiny_fs / "objects")
    store.ensure_ready()
    for folder in (tiny_fs / "objects" / "inputs" / "j", tiny_fs / "objects" / ".meta" / "inputs" / "j"):
        folder.mkdir(parents=True)
    vfs = os.statvfs(tiny_fs)
    size = vfs.f_bavail * vfs.f_frsize - 1
    with pytest.raises(TransientError, match="full"):
        store.put_stream("inputs/j/x.bin", io.BytesIO(os.urandom(size)), length=size)
    assert _files_on(tiny_fs / "objects") == []
    assert store.stat("inputs/j/x.bin") is None


def _fill(mount: Path) -> Path:
    """Take every free block of ``mount`` (4 KiB pieces until ENOSPC)."""
    filler = mount / "filler"
    with filler.open("wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)
    return filler


def test_database_disk_full_at_submission_is_store_unavailable_and_leaves_nothing(
        embedded: Callable[..., ApiHarness], tiny_fs: Path, tmp_path: Path):
    """The inputs fit (their store is elsewhere) but the SQLite disk is full. Before: 503 database_unavailable,
    the inputs stayed as orphans (with empty ``inputs/{id}/`` folders) and /readyz said 200."""
    store = tmp_path / "objects"
    api = embedded(data_dir=tiny_fs, store_dir=store, min_free_disk_mb=1)
    assert api.client.get("/readyz").status_code == 200
    filler = _fill(tiny_fs)
    r = api.post_study(study_zip_bytes(views=("A4C",), n_frames=4))
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "store_unavailable" and "full" in r.json()["detail"]
    assert _files_on(store) == [] and not any((store / "inputs").glob("*")), list(store.rglob("*"))
    ready = api.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["disk"] == "store_unavailable", ready.text
    filler.unlink()
    assert api.client.get("/readyz").status_code == 200
    assert api.post_study(study_zip_bytes(views=("A4C",), n_frames=4)).status_code == 202
