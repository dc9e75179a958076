"""Load generation against a running Echo4D API (used by ``echo4d bench api``): submit, poll, measure.

Studies are small synthetic bundles built from numpy (beating ellipses), each one different so
no two submissions share a body. Everything goes over HTTP like a PACS integration would.
"""

from __future__ import annotations

import io
import json
import statistics
import threading
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import numpy as np
from numpy.typing import NDArray

TERMINAL = ("succeeded", "failed", "cancelled")


def ellipse_cine(n_frames: int = 10, size: int = 96, spacing_mm: float = 1.2,
                 width_scale: float = 1.0) -> NDArray[np.uint8]:
    """(T, H, W) LV-like cavities: apex near row 0 (the probe), ED at t=0, ES mid-cycle."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = []
    for t in range(n_frames):
        squeeze = 1.0 - 0.18 * np.sin(np.pi * t / max(n_frames - 1, 1))
        half_len = 38.0 / spacing_mm * (0.55 + 0.45 * squeeze)
        half_wid = 21.0 / spacing_mm * squeeze * width_scale
        centre_row = 20.0 / spacing_mm + half_len
        inside = ((rows - centre_row) / half_len) ** 2 + ((cols - size / 2.0) / half_wid) ** 2 <= 1.0
        frames.append(inside.astype(np.uint8))
    return np.stack(frames)


def synthetic_study_zip(seed: int = 0, views: tuple[str, ...] = ("A4C", "A2C"), n_frames: int = 8) -> bytes:
    """An ``echo4d-study/1`` zip; ``seed`` changes the widths so every body is distinct."""
    buf = io.BytesIO()
    doc: dict[str, Any] = {"format": "echo4d-study/1", "views": {}}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i, view in enumerate(views):
            npy = io.BytesIO()
            np.save(npy, ellipse_cine(n_frames, width_scale=0.9 + 0.05 * i + 0.001 * (seed % 97)))
            zf.writestr(f"{view}.npy", npy.getvalue())
            doc["views"][view] = {"masks": f"{view}.npy", "pixel_spacing_mm": [1.2, 1.2], "fps": 30.0}
        zf.writestr("study.json", json.dumps(doc))
    return buf.getvalue()


@dataclass
class LoadReport:
    jobs: int
    concurrency: int
    profile: str
    accepted: int = 0
    rejected: int = 0
    rejected_by_code: dict[str, int] = field(default_factory=dict)
    throttled: int = 0  # 429 answers waited out (Retry-After) and retried
    by_status: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    duplicate_jobs: int = 0
    post_p50_ms: float = 0.0
    post_p99_ms: float = 0.0
    get_p50_ms: float = 0.0
    get_p99_ms: float = 0.0
    gets: int = 0
    submit_wall_s: float = 0.0
    accepted_per_s: float = 0.0
    wall_s: float = 0.0
    completed_per_s: float = 0.0
    job_p50_s: float = 0.0
    api_rss_mb_start: float | None = None
    api_rss_mb_max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run_load(base_url: str, api_key: str, *, jobs: int, concurrency: int, profile: str = "smoke",
             timeout_s: float = 600.0, poll_s: float = 0.5, rss_mb: Callable[[], float | None] | None = None,
             seed: int = 0) -> LoadReport:
    """Submit ``jobs`` studies from ``concurrency`` clients, poll each to a terminal state, and measure."""
    report = LoadReport(jobs=jobs, concurrency=concurrency, profile=profile)
    seed = int(time.time()) % 100_000 if seed is None else seed
    headers = {"Authorization": f"Bearer {api_key}"}
    lock = threading.Lock()
    post_ms: list[float] = []
    get_ms: list[float] = []
    job_s: list[float] = []
    ids: list[str] = []
    finals: list[str] = []
    submitted_at: list[float] = []
    report.api_rss_mb_start = rss_mb() if rss_mb else None
    peak = [report.api_rss_mb_start or 0.0]
    start = time.perf_counter()

    def call(client: httpx.Client, timings: list[float], method: str, path: str, **kw: Any) -> httpx.Response:
        """One request, waiting out 429s as a well-behaved client does (each try is timed)."""
        while True:
            t = time.perf_counter()
            r = client.request(method, path, **kw)
            with lock:
                timings.append(1000 * (time.perf_counter() - t))
            if r.status_code != 429:
                return r
            with lock:
                report.throttled += 1
            time.sleep(float(r.headers.get("retry-after", "1")))

    def one(i: int) -> None:
        body = synthetic_study_zip(seed + i)
        with httpx.Client(base_url=base_url, headers=headers, timeout=60.0) as client:
            t0 = time.perf_counter()
            r = call(client, post_ms, "POST", "/v1/studies", files={"file": ("s.zip", body, "application/zip")},
                     data={"profile": profile}, headers={"Idempotency-Key": f"bench-{seed}-{i}"})
            with lock:
                submitted_at.append(time.perf_counter())
            if r.status_code != 202:
                with lock:
                    report.rejected += 1
                    code = str(r.status_code)
                    report.rejected_by_code[code] = report.rejected_by_code.get(code, 0) + 1
                return
            job_id = r.json()["id"]
            with lock:
                report.accepted += 1
                ids.append(job_id)
            deadline = time.monotonic() + timeout_s
            status = "lost"
            while time.monotonic() < deadline:
                g = call(client, get_ms, "GET", f"/v1/jobs/{job_id}")
                if g.status_code == 200 and g.json()["status"] in TERMINAL:
                    status = g.json()["status"]
                    break
                if g.status_code == 404:
                    break
                time.sleep(poll_s)
            with lock:
                finals.append(status)
                job_s.append(time.perf_counter() - t0)
                if rss_mb is not None:
                    peak[0] = max(peak[0], rss_mb() or 0.0)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(jobs)))
    report.wall_s = round(time.perf_counter() - start, 3)
    report.submit_wall_s = round((max(submitted_at) - start) if submitted_at else 0.0, 3)
    report.accepted_per_s = round(report.accepted / max(report.submit_wall_s, 1e-9), 2)
    report.by_status = {s: finals.count(s) for s in sorted(set(finals))}
    report.lost = finals.count("lost")
    report.duplicate_jobs = len(ids) - len(set(ids))
    report.post_p50_ms, report.post_p99_ms = round(_pct(post_ms, 0.5), 1), round(_pct(post_ms, 0.99), 1)
    report.get_p50_ms, report.get_p99_ms = round(_pct(get_ms, 0.5), 1), round(_pct(get_ms, 0.99), 1)
    report.gets = len(get_ms)
    done = sum(report.by_status.get(s, 0) for s in TERMINAL)
    report.completed_per_s = round(done / max(report.wall_s, 1e-9), 3)
    report.job_p50_s = round(statistics.median(job_s), 2) if job_s else 0.0
    report.api_rss_mb_max = round(peak[0], 1) if rss_mb else None
    return report
