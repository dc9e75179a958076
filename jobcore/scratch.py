"""Scratch folders of running jobs (``<scratch_dir>/echo4d-<job id[:8]>-*``) and the sweep that removes abandoned
ones. ``scratch_dir`` belongs to one installation (default ``<data_dir>/scratch``): the sweep must never see the
folders of another installation's jobs, which its job table does not know.

A job's scratch copy of its study is removed when the job ends; a worker killed mid-job (kill -9, out of
memory, past its hard limit) leaves it behind. The sweep runs when a worker starts and on every reconciler
pass: it removes the scratch folders whose job is not running, once they are ``grace_s`` old (a job claimed a
moment ago may just be creating its folder).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import structlog

from jobcore.db.jobs import JobRepository

log = structlog.get_logger(__name__)
PREFIX = "echo4d-"
_SCRATCH_RE = re.compile(r"^echo4d-([0-9a-f]{8})-[A-Za-z0-9_]+$")


def make_scratch(job_id: str, root: Path | None = None) -> Path:
    """A fresh scratch folder for ``job_id`` under ``root`` (default: the temp folder)."""
    if root is not None:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{job_id[:8]}-", dir=root))


def sweep_scratch(jobs: JobRepository, root: Path, grace_s: float = 60.0, now: float | None = None) -> int:
    """Remove the abandoned scratch folders under ``root``; returns how many."""
    folder = root
    try:
        candidates = [e for e in os.scandir(folder) if _SCRATCH_RE.match(e.name) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return 0
    if not candidates:
        return 0
    running = {job_id[:8] for job_id in jobs.running_ids()}
    now = time.time() if now is None else now
    removed = 0
    for entry in candidates:
        match = _SCRATCH_RE.match(entry.name)
        if match is None or match.group(1) in running:
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < grace_s:
                continue
        except OSError:
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed += not os.path.exists(entry.path)
    if removed:
        log.info("scratch_swept", folders=removed)
    return removed
