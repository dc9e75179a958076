"""Scratch folders left by a worker killed mid-job (issue #15 row 10): swept at start and by the reconciler,
never while their job runs, never another installation's (the folder is per installation)."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from service_testkit import ApiHarness, embedded_settings

from jobcore.db.models import utcnow
from jobcore.reconciler import Reconciler
from jobcore.scratch import make_scratch, sweep_scratch


def _abandon(job_id: str, root: Path, age_s: float = 600) -> Path:
    """A scratch folder with a copy of the study in it, as a killed worker leaves it, ``age_s`` old."""
    folder = make_scratch(job_id, root)
    (folder / "study.zip").write_bytes(b"\0" * 4096)
    old = time.time() - age_s
    os.utime(folder, (old, old))
    return folder


def _claim(api: ApiHarness, job_id: str) -> None:
    now = utcnow()
    assert api.services.jobs.claim(job_id, "w", now, now - timedelta(seconds=60)) is not None


def test_sweep_removes_only_abandoned_scratch(api: ApiHarness, make_study_zip, tmp_path: Path):
    root = api.services.settings.resolved_scratch_dir
    running, queued, finished = (api.post_study(make_study_zip(seed=i)).json()["id"] for i in range(3))
    _claim(api, running)
    keep_running = _abandon(running, root)
    keep_fresh = _abandon(queued, root, age_s=1)
    gone = [_abandon(queued, root), _abandon(finished, root), _abandon("0123abcd-0000", root)]
    unrelated = root / "echo4d-notajob"
    unrelated.mkdir()
    assert sweep_scratch(api.services.jobs, root) == 3
    assert keep_running.is_dir() and keep_fresh.is_dir() and unrelated.is_dir()
    assert not any(g.exists() for g in gone)


def test_reconciler_pass_sweeps_scratch(api: ApiHarness, make_study_zip):
    s = api.services
    job_id = api.post_study(make_study_zip()).json()["id"]
    folder = _abandon(job_id, s.settings.resolved_scratch_dir)
    report = Reconciler(s.settings, s.jobs, s.queue, s.store, s.metrics).run_once()
    assert report.scratch_dirs == 1 and not folder.exists()


def test_embedded_start_sweeps_what_a_killed_process_left(api_factory, tmp_data_dir: Path, make_study_zip):
    """kill -9 during a job leaves ``echo4d-<job>-*`` with the study's copy; the next start removes it."""
    first = api_factory(embedded_settings(tmp_data_dir, job_max_attempts=1))
    job_id = first.post_study(make_study_zip()).json()["id"]
    _claim(first, job_id)  # the job was running when the process died...
    folder = _abandon(job_id, first.services.settings.resolved_scratch_dir)
    second = api_factory(embedded_settings(tmp_data_dir, embedded_worker=True, job_max_attempts=1))
    assert second.client.get("/healthz").status_code == 200
    assert not folder.exists()  # ...recovered at start (embedded: every running job is an orphan), scratch removed
    # (its one attempt used, the job is failed rather than run again: the worker child stays idle in this test)
    assert second.services.jobs.get(job_id).error_code == "worker_lost"  # type: ignore[union-attr]
