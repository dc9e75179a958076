"""Sub-stage progress: steps done/total, ETAs from measured step times, and what the job resource shows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from service_testkit import ApiHarness

from jobcore.db.models import utcnow
from worker.control import JobControl
from worker.progress import SUBSTAGES, StepTimes, SubstageTracker


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _items(tracker: SubstageTracker) -> dict[str, dict]:
    return {item["name"]: item for item in tracker.snapshot()["items"]}


def test_running_eta_comes_from_this_jobs_step_time_and_pending_ones_are_unknown_without_history():
    clock = Clock()
    tracker = SubstageTracker(None, clock)
    tracker.steps("encode", 0, 1)
    clock.t += 0.5
    tracker.steps("encode", 1, 1)
    tracker.steps("shape_fit", 0, 800)
    clock.t += 20.0
    tracker.steps("shape_fit", 100, 800)  # 0.2 s per step, 700 to go
    items = _items(tracker)
    assert items["encode"] == {"name": "encode", "status": "done", "steps_done": 1, "steps_total": 1,
                               "elapsed_s": 0.5, "eta_s": None}
    assert items["shape_fit"]["status"] == "running" and items["shape_fit"]["eta_s"] == pytest.approx(140.0)
    assert items["motion"] == {"name": "motion", "status": "pending", "steps_done": 0, "steps_total": None,
                               "elapsed_s": None, "eta_s": None}
    assert tracker.snapshot()["eta_s"] is None  # motion, mesh and export were never measured on this worker


def test_an_early_stop_ends_the_shape_fit_below_its_budget_and_history_fills_the_eta():
    clock = Clock()
    history = StepTimes()
    first = SubstageTracker(history, clock)
    for name, total, seconds in (("encode", 1, 1.0), ("shape_fit", 800, 80.0), ("motion", 300, 200.0),
                                 ("mesh", 3, 25.0), ("export", 3, 10.0)):
        first.steps(name, 0, total)
        clock.t += seconds
        first.steps(name, total if name != "shape_fit" else 576, total)  # the shape fit stops early at 576
    first.finish("export")
    items = _items(first)
    assert items["shape_fit"]["status"] == "done" and items["shape_fit"]["steps_done"] == 576
    assert all(item["status"] == "done" for item in items.values())
    assert first.snapshot()["eta_s"] == 0.0
    assert history.duration_s("motion") == pytest.approx(200.0)

    second = SubstageTracker(history, clock)  # the next job on this worker
    second.steps("encode", 0, 1)
    clock.t += 1.0
    second.steps("encode", 1, 1)
    second.steps("shape_fit", 0, 800)
    clock.t += 10.0
    second.steps("shape_fit", 100, 800)
    snap = second.snapshot()
    # shape fit: 0.1 s/step x 700 left = 70 s; motion/mesh/export from the first job: 200 + 25 + 10
    assert snap["eta_s"] == pytest.approx(70.0 + 200.0 + 25.0 + 10.0)


def test_step_times_average_over_jobs():
    history = StepTimes()
    history.record("motion", 100.0)
    history.record("motion", 200.0)
    assert history.duration_s("motion") == pytest.approx(150.0)
    assert history.duration_s("mesh") is None


def test_steps_never_go_backwards_and_unknown_names_are_ignored():
    clock = Clock()
    tracker = SubstageTracker(None, clock)
    tracker.steps("shape_fit", 0, 800)
    tracker.steps("shape_fit", 300, 800)
    tracker.steps("shape_fit", 200, 800)
    tracker.steps("not-a-stage", 1, 2)
    assert _items(tracker)["shape_fit"]["steps_done"] == 300
    assert [item["name"] for item in tracker.snapshot()["items"]] == list(SUBSTAGES)


def test_the_job_resource_shows_sub_stages_and_a_shrinking_eta(api: ApiHarness, make_study_zip):
    """JobControl as the pipeline drives it (models.recon's StageControl calls steps then progress): the row
    carries the snapshot and GET /v1/jobs/{id} serves it, with the ETA counted down from the row's update."""
    from models.recon.control import StageControl

    job_id = api.post_study(make_study_zip()).json()["id"]
    now = utcnow()
    claim = api.services.jobs.claim(job_id, "w", now, now - timedelta(seconds=60))
    assert claim is not None
    clock = Clock()
    control = JobControl(api.services.jobs, claim, api.services.metrics, heartbeat_interval_s=1,
                         soft_time_limit_s=600)
    control.substages.clock = clock
    with control.stage("fetch"):
        pass
    with control.stage("reconstruct"):
        stage = StageControl("anchor", control.progress, control.should_stop, control.steps)
        stage.report(0.0, 0, 800)
        clock.t += 40.0
        control._last_progress_write = 0.0  # the 1 s write throttle is wall-clock: let this report through
        stage.report(0.25, 200, 800)
    job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
    fit = next(s for s in job["substages"] if s["name"] == "shape_fit")
    assert fit == {"name": "shape_fit", "status": "running", "steps_done": 200, "steps_total": 800,
                   "elapsed_s": 40.0, "eta_s": 120.0}
    assert job["stage"] == "reconstruct" and 10.0 < job["progress"] < 88.0
    assert job["eta_s"] is None  # nothing after the shape fit has been measured on this worker yet
    control.export_step(0, 3)  # within the 1 s throttle, but a sub-stage started: written at once
    job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
    states = {s["name"]: s["status"] for s in job["substages"]}
    assert states["shape_fit"] == "done" and states["export"] == "running"


def test_the_eta_counts_down_from_the_rows_last_update():
    from jobcore.db.models import Job
    from jobcore.resource import job_out

    now = utcnow()
    snapshot = {"items": [{"name": "motion", "status": "running", "steps_done": 100, "steps_total": 300,
                           "elapsed_s": 50.0, "eta_s": 100.0}], "eta_s": 130.0}
    job = Job(id="j", tenant_id="t", status="running", stage="reconstruct", progress=60.0, profile="default",
              input_kind="bundle", attempts=1, max_attempts=3, cancel_requested=False, created_at=now,
              updated_at=now - timedelta(seconds=30), substages=snapshot, webhook_attempts=0, artifacts={},
              summary={}, stage_timings={})
    out = job_out(job)
    assert out.eta_s == pytest.approx(100.0, abs=1.0)  # 130 s as of 30 s ago
    assert out.substages[0].name == "motion" and out.substages[0].steps_total == 300
    job.status = "succeeded"
    assert job_out(job).eta_s == 0.0


def test_a_fresh_worker_takes_its_etas_from_the_last_finished_job(api: ApiHarness, make_study_zip):
    jobs = api.services.jobs
    done = {"items": [{"name": "motion", "status": "done", "steps_done": 300, "steps_total": 300,
                       "elapsed_s": 200.0, "eta_s": None},
                      {"name": "mesh", "status": "running", "steps_done": 1, "steps_total": 3,
                       "elapsed_s": 3.0, "eta_s": 6.0}], "eta_s": 0.0}
    job_id = api.post_study(make_study_zip()).json()["id"]
    now = utcnow()
    claim = jobs.claim(job_id, "w", now, now - timedelta(seconds=60))
    assert claim is not None
    from jobcore.db.models import JobStatus

    assert jobs.finish(claim, JobStatus.SUCCEEDED, artifacts={}, substages=done)
    assert jobs.last_substages("smoke") is None  # another profile
    history = StepTimes()
    last = jobs.last_substages(claim.profile)
    assert last is not None
    history.seed(last)
    assert history.duration_s("motion") == 200.0 and history.duration_s("mesh") is None  # only finished ones
