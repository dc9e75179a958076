"""``echo4d bench api``: drive a running (or a freshly started embedded) API with N concurrent clients.

Imported for its side effect: it adds the ``api`` command to ``cli.bench.bench_app``.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer

from cli.bench import bench_app
from cli.common import user_errors


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_embedded(data_dir: Path, prior_checkpoint: Path | None = None) -> tuple[subprocess.Popen[str], str, str]:
    """Start `echo4d serve` on a free loopback port; returns (process, base URL, API key).

    Default settings, except ``ECHO4D_PRIOR_CHECKPOINT`` when ``prior_checkpoint`` is given (e.g. a smoke prior,
    so that jobs can succeed before the shipped checkpoint exists)."""
    port = _free_port()
    from jobcore.settings import environment_without_settings

    env = environment_without_settings()
    if prior_checkpoint is not None:
        env["ECHO4D_PRIOR_CHECKPOINT"] = str(prior_checkpoint.resolve())
    proc = subprocess.Popen([sys.executable, "-c", "from cli import app; app()", "serve", "--port",
                             str(port), "--data-dir", str(data_dir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    key = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("API key: "):
            key = line.split(": ", 1)[1].strip()
        if line.startswith("Echo4D API on"):
            break
    import httpx

    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return proc, url, key
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the embedded API did not start")


@bench_app.command("api")
def bench_api(
    url: Annotated[str | None, typer.Option(help="URL of a running API (default: start an embedded one).")] = None,
    key: Annotated[str | None, typer.Option(envvar="ECHO4D_BENCH_API_KEY", help="API key for --url.")] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Studies to submit.")] = 20,
    concurrency: Annotated[int, typer.Option(min=1, help="Concurrent clients.")] = 4,
    profile: Annotated[str, typer.Option(help="Reconstruction profile of the submitted jobs.")] = "smoke",
    timeout_s: Annotated[float, typer.Option(help="Seconds before an unfinished job counts as lost.")] = 900.0,
    pid: Annotated[int | None, typer.Option(help="PID of the API process, to report its RSS.")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the report as JSON here.")] = None,
    prior_checkpoint: Annotated[Path | None, typer.Option(
        "--prior-checkpoint", help="Shape prior for the embedded server (default: the shipped one).")] = None,
) -> None:
    """Submit and poll N jobs over loopback; print p50/p99 latencies of POST and GET, throughput, lost jobs."""
    with user_errors():
        from service.loadgen import run_load

        proc = None
        tmp = None
        if url is None:
            tmp = tempfile.TemporaryDirectory(prefix="echo4d-bench-")
            proc, url, key = _start_embedded(Path(tmp.name) / "var", prior_checkpoint)
            pid = proc.pid
        if not key:
            raise typer.BadParameter("--key (or ECHO4D_BENCH_API_KEY) is needed with --url")
        try:
            watched = pid
            report = run_load(url, key, jobs=jobs, concurrency=concurrency, profile=profile, timeout_s=timeout_s,
                              rss_mb=(lambda: _rss_mb(watched)) if watched else None)
        finally:
            if proc is not None:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
            if tmp is not None:
                tmp.cleanup()
        data = report.to_dict()
        width = max(len(k) for k in data)
        for k, v in data.items():
            typer.echo(f"{k:<{width}}  {v}")
        if out is not None:
            out.write_text(json.dumps(data, indent=2) + "\n")
