"""Load and soak figures for docs/reliability.md (a script run by hand, never collected by pytest).

Starts ``echo4d serve`` (embedded: API + worker child process, SQLite, folder store) on loopback with a shape prior
(a smoke prior trained here unless ``--prior`` names one), then

1. load: ``--jobs`` distinct small studies from ``--concurrency`` clients (``service.loadgen.run_load``: each
   client POSTs, then polls its job to the end; 429s are waited out), profile ``smoke``; reports accepted/s,
   p50/p99 of POST and GET, jobs lost (not terminal in time) and duplicate jobs;
2. soak: ``--soak-s`` seconds of the same traffic from ``--soak-concurrency`` clients, the API process RSS
   sampled every ``--sample-s`` seconds, with its linear trend after the warm-up;
3. audit of the server's state on disk: one job per Idempotency-Key, and for every job the objects under
   ``outputs/{id}/`` are exactly its artifacts (duplicate or orphaned artifacts must be 0).

    .venv/bin/python tests/load/soak.py --jobs 40 --concurrency 8 --soak-s 180 --out var/reliability-load.json

Loopback only, bounded in count and time. Prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cli.bench_api import _rss_mb, _start_embedded  # noqa: E402
from service.loadgen import TERMINAL, _pct, run_load, synthetic_study_zip  # noqa: E402


def train_smoke_prior(dest: Path) -> Path:
    import torch

    from models.cohort.version import GENERATOR_VERSION
    from models.prior.checkpoint import save_prior
    from models.prior.config import TrainConfig
    from models.prior.train import train_prior

    torch.set_num_threads(1)
    cfg = TrainConfig.profile("smoke")
    result = train_prior(cfg, device="cpu", cache_dir=dest.parent / "prior-cache")
    return save_prior(result.prior, dest, train_config=cfg, metrics={}, curves=result.curves,
                      cohort_version=GENERATOR_VERSION)


def soak(url: str, key: str, pid: int, *, duration_s: float, concurrency: int, sample_s: float,
         seed: int) -> dict[str, Any]:
    """Clients submit and poll without pause for ``duration_s``; RSS of ``pid`` sampled meanwhile."""
    headers = {"Authorization": f"Bearer {key}"}
    stop = threading.Event()
    lock = threading.Lock()
    samples: list[tuple[float, float]] = []
    post_ms: list[float] = []
    get_ms: list[float] = []
    finals: dict[str, str] = {}
    rejected: dict[str, int] = {}
    start = time.monotonic()

    def sampler() -> None:
        while True:
            rss = _rss_mb(pid)
            if rss is not None:
                samples.append((round(time.monotonic() - start, 1), round(rss, 1)))
            if stop.wait(sample_s):
                return

    def client(n: int) -> None:
        i = 0
        with httpx.Client(base_url=url, headers=headers, timeout=60.0) as c:
            while not stop.is_set():
                idem = f"soak-{seed}-{n}-{i}"
                body = synthetic_study_zip(seed + 1000 * n + i)
                t = time.perf_counter()
                r = c.post("/v1/studies", files={"file": ("s.zip", body, "application/zip")},
                           data={"profile": "smoke"}, headers={"Idempotency-Key": idem})
                with lock:
                    post_ms.append(1000 * (time.perf_counter() - t))
                i += 1
                if r.status_code == 429:
                    time.sleep(float(r.headers.get("retry-after", "1")))
                    continue
                if r.status_code != 202:
                    with lock:
                        rejected[str(r.status_code)] = rejected.get(str(r.status_code), 0) + 1
                    continue
                job_id = r.json()["id"]
                status = "lost"
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    t = time.perf_counter()
                    g = c.get(f"/v1/jobs/{job_id}")
                    with lock:
                        get_ms.append(1000 * (time.perf_counter() - t))
                    if g.status_code == 200 and g.json()["status"] in TERMINAL:
                        status = g.json()["status"]
                        break
                    time.sleep(0.5)
                with lock:
                    finals[job_id] = status

    sampler_thread = threading.Thread(target=sampler, daemon=True)
    sampler_thread.start()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(client, n) for n in range(concurrency)]
        time.sleep(duration_s)
        stop.set()
        for f in futures:
            f.result()
    sampler_thread.join(timeout=sample_s + 5)
    wall = time.monotonic() - start
    after_warmup = [(t, m) for t, m in samples if t >= 0.25 * duration_s]
    slope = 0.0
    if len(after_warmup) >= 3:
        ts = [t for t, _ in after_warmup]
        ms = [m for _, m in after_warmup]
        t_mean, m_mean = sum(ts) / len(ts), sum(ms) / len(ms)
        var = sum((t - t_mean) ** 2 for t in ts)
        slope = sum((t - t_mean) * (m - m_mean) for t, m in after_warmup) / var * 60.0 if var else 0.0
    by_status = {s: list(finals.values()).count(s) for s in sorted(set(finals.values()))}
    return {
        "duration_s": round(wall, 1), "concurrency": concurrency, "submitted": len(finals),
        "by_status": by_status, "lost": by_status.get("lost", 0), "rejected_by_code": rejected,
        "post_p50_ms": round(_pct(post_ms, 0.5), 1), "post_p99_ms": round(_pct(post_ms, 0.99), 1),
        "get_p50_ms": round(_pct(get_ms, 0.5), 1), "get_p99_ms": round(_pct(get_ms, 0.99), 1),
        "rss_mb_first": samples[0][1] if samples else None,
        "rss_mb_after_warmup": after_warmup[0][1] if after_warmup else None,
        "rss_mb_last": samples[-1][1] if samples else None,
        "rss_mb_max": max((m for _, m in samples), default=None),
        "rss_trend_after_warmup_mb_per_min": round(slope, 2),
        "rss_samples": samples,
    }


def audit(data_dir: Path) -> dict[str, Any]:
    """Duplicates and orphans, read from the server's SQLite file and object folder."""
    with sqlite3.connect(data_dir / "echo4d.sqlite3") as db:
        rows = db.execute("SELECT id, status, artifacts, idempotency_key FROM jobs").fetchall()
    objects = data_dir / "objects"
    duplicate_artifacts = missing_artifacts = orphan_outputs = 0
    keys: dict[str, int] = {}
    for job_id, status, artifacts_json, idem in rows:
        if idem is not None:
            keys[idem] = keys.get(idem, 0) + 1
        out_dir = objects / "outputs" / job_id
        stored = sorted(p.relative_to(objects).as_posix() for p in out_dir.rglob("*") if p.is_file()) \
            if out_dir.is_dir() else []
        expected = sorted(str(m["key"]) for m in json.loads(artifacts_json or "{}").values())
        if status != "succeeded":
            orphan_outputs += len(stored)
            continue
        duplicate_artifacts += len(stored) - len(set(stored)) + len(set(stored) - set(expected))
        missing_artifacts += len(set(expected) - set(stored))
    temp_files = [p.name for p in objects.rglob(".upload-*")]
    return {"jobs_in_table": len(rows), "duplicate_jobs_per_idempotency_key": sum(n - 1 for n in keys.values()),
            "duplicate_artifacts": duplicate_artifacts, "missing_artifacts": missing_artifacts,
            "orphan_outputs_of_unsuccessful_jobs": orphan_outputs, "temporary_files_left": len(temp_files)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--soak-s", type=float, default=180.0, help="soak duration (0: skip the soak)")
    ap.add_argument("--soak-concurrency", type=int, default=4)
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--timeout-s", type=float, default=900.0, help="a job not finished by then counts as lost")
    ap.add_argument("--prior", type=Path, default=None, help="shape prior checkpoint (default: train a smoke one)")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="OMP_NUM_THREADS of the server (1: a shared box; more threads oversubscribe it)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.soak_s > 600 or args.jobs > 500:
        ap.error("bounded by design: --soak-s <= 600, --jobs <= 500")

    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.torch_threads)
    with tempfile.TemporaryDirectory(prefix="echo4d-soak-") as tmp:
        prior = args.prior or train_smoke_prior(Path(tmp) / "prior" / "smoke_prior.pt")
        data_dir = Path(tmp) / "var"
        proc, url, key = _start_embedded(data_dir, prior)
        try:
            seed = int(time.time()) % 100_000
            load = run_load(url, key, jobs=args.jobs, concurrency=args.concurrency, profile="smoke",
                            timeout_s=args.timeout_s, rss_mb=lambda: _rss_mb(proc.pid), seed=seed)
            report: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                                      "torch_threads": args.torch_threads, "load": load.to_dict()}
            if args.soak_s > 0:
                report["soak"] = soak(url, key, proc.pid, duration_s=args.soak_s,
                                      concurrency=args.soak_concurrency, sample_s=args.sample_s, seed=seed + 50_000)
            report["readyz"] = httpx.get(url + "/readyz").json()
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        report["audit"] = audit(data_dir)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    bad = report["load"]["lost"] + report.get("soak", {}).get("lost", 0) + report["audit"]["duplicate_artifacts"] \
        + report["audit"]["duplicate_jobs_per_idempotency_key"] + report["load"]["duplicate_jobs"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
