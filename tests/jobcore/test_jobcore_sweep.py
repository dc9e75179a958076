"""The reconciler's orphan sweep on both stores (a folder, and moto's S3 server through the real minio client).

What it deletes (outputs of failed and cancelled jobs; inputs and outputs without a job row once older than the
grace), what it must keep (everything of a job that has a row and may still need it, a submission still
uploading), its pacing inside ``run_once``, and a store or database that fails in the middle of a sweep.
The real outages (S3 server stopped, folder store remounted read-only) are in
``tests/reliability/test_reliability_faults.py``.
"""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from service_testkit import ApiHarness, embedded_settings

from jobcore.db.jobs import JobError
from jobcore.db.models import JobStatus, utcnow
from jobcore.errors import PlatformCode, TransientError
from jobcore.reconciler import Reconciler
from jobcore.storage import ListedObject, ObjectStore, input_key, output_key

GRACE_S = 3600.0
LATER = timedelta(seconds=GRACE_S + 5)


@pytest.fixture(params=["local", "minio"])
def sweep_api(request: pytest.FixtureRequest, api_factory: Callable[..., ApiHarness], tmp_data_dir: Path) -> ApiHarness:
    """The embedded API (SQLite) on a folder store or on S3 (moto + minio client), background threads off."""
    values: dict[str, Any] = {}
    if request.param == "minio":
        values = {"store_backend": "minio", "s3_endpoint": request.getfixturevalue("moto_endpoint"),
                  "s3_bucket": request.getfixturevalue("bucket"), "s3_access_key": "testing",
                  "s3_secret_key": "testing"}
    return api_factory(embedded_settings(tmp_data_dir, orphan_grace_s=GRACE_S, **values))


def _reconciler(api: ApiHarness, store: Any = None) -> Reconciler:
    s = api.services
    return Reconciler(s.settings, s.jobs, s.queue, store if store is not None else s.store, s.metrics)


def _put(store: ObjectStore, key: str, data: bytes = b"partial") -> str:
    return store.put_stream(key, io.BytesIO(data), length=len(data)).key


def _submit(api: ApiHarness, body: bytes) -> str:
    r = api.post_study(body)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _folders(store: ObjectStore, area: str) -> set[str]:
    return {key.split("/")[1] for key in store.list_keys(f"{area}/")}


def _claim(api: ApiHarness, job_id: str) -> Any:
    now = utcnow()
    claim = api.services.jobs.claim(job_id, "test-worker", now, now - timedelta(seconds=60))
    assert claim is not None
    return claim


def _failed_with_outputs(api: ApiHarness, body: bytes) -> str:
    """A failed job whose own cleanup met a dead store: its partial outputs are still there."""
    job_id = _submit(api, body)
    error = JobError(PlatformCode.STORE_UNAVAILABLE.value, "the object store is unreachable")
    assert api.services.jobs.finish(_claim(api, job_id), JobStatus.FAILED, error=error)
    for name in ("mesh.glb", "report.json"):
        _put(api.services.store, output_key(job_id, name))
    return job_id


def _jobs_in_every_state(api: ApiHarness, make_study_zip: Callable[..., bytes]) -> dict[str, str]:
    """One job per state with the objects it would have, plus a folder pair without a row: {label: id}."""
    services = api.services
    store, jobs = services.store, services.jobs
    ids = {label: _submit(api, make_study_zip(seed=i))
           for i, label in enumerate(("queued", "running", "succeeded", "cancelled"))}
    ids["failed"] = _failed_with_outputs(api, make_study_zip(seed=9))
    _claim(api, ids["running"])
    _put(store, output_key(ids["running"], "mesh.glb"))  # uploading its outputs right now
    done = _claim(api, ids["succeeded"])
    artifacts = {name: {"key": _put(store, output_key(ids["succeeded"], name), b"{}")}
                 for name in ("mesh.glb", "report.json")}
    assert jobs.finish(done, JobStatus.SUCCEEDED, artifacts=artifacts)
    assert api.client.post(f"/v1/jobs/{ids['cancelled']}/cancel", headers=api.auth()).status_code == 200
    _put(store, output_key(ids["cancelled"], "mesh.glb"))  # uploaded by a worker whose claim was taken over
    ids["no_row"] = str(uuid.uuid4())  # a submission that died before its INSERT; outputs nobody owns
    _put(store, input_key(ids["no_row"], "study.zip"))
    _put(store, output_key(ids["no_row"], "mesh.glb"))
    return ids


def test_the_sweep_deletes_what_no_job_needs_and_keeps_everything_else(sweep_api: ApiHarness, make_study_zip):
    store = sweep_api.services.store
    ids = _jobs_in_every_state(sweep_api, make_study_zip)
    with_rows = {ids[k] for k in ("queued", "running", "succeeded", "failed", "cancelled")}

    first = _reconciler(sweep_api).sweep_orphans()
    assert (first.orphan_outputs, first.orphan_inputs) == (2, 0)  # failed + cancelled; the rest is young or owned
    assert _folders(store, "outputs") == {ids["running"], ids["succeeded"], ids["no_row"]}
    assert _folders(store, "inputs") == with_rows | {ids["no_row"]}

    second = _reconciler(sweep_api).sweep_orphans(utcnow() + LATER)  # everything is older than the grace now
    assert (second.orphan_outputs, second.orphan_inputs) == (1, 1)  # the folders without a row
    assert _folders(store, "outputs") == {ids["running"], ids["succeeded"]}
    assert _folders(store, "inputs") == with_rows  # inputs of a job with a row stay, whatever its state or age
    assert sorted(store.list_keys(f"outputs/{ids['succeeded']}/")) == [
        output_key(ids["succeeded"], "mesh.glb"), output_key(ids["succeeded"], "report.json")]

    again = _reconciler(sweep_api).sweep_orphans(utcnow() + LATER)
    assert (again.orphan_outputs, again.orphan_inputs) == (0, 0)  # idempotent
    if store.kind == "local":  # the metadata of deleted objects went with them
        meta = Path(sweep_api.services.settings.resolved_store_dir) / ".meta"
        assert not list((meta / "outputs" / ids["failed"]).glob("*.json"))
        assert not list((meta / "inputs" / ids["no_row"]).glob("*.json"))


def test_run_once_sweeps_on_its_first_pass_then_every_quarter_of_the_grace(sweep_api: ApiHarness, make_study_zip):
    reconciler = _reconciler(sweep_api)
    assert reconciler.sweep_every_s == GRACE_S / 4
    t0 = utcnow()
    _failed_with_outputs(sweep_api, make_study_zip(seed=1))
    assert reconciler.run_once(t0).orphan_outputs == 1
    second = _failed_with_outputs(sweep_api, make_study_zip(seed=2))
    assert reconciler.run_once(t0 + timedelta(seconds=GRACE_S / 4 - 1)).orphan_outputs == 0  # not due yet
    assert sweep_api.services.store.list_keys(f"outputs/{second}/")
    assert reconciler.run_once(t0 + timedelta(seconds=GRACE_S / 4)).orphan_outputs == 1
    assert sweep_api.services.store.list_keys(f"outputs/{second}/") == []


def test_a_submission_still_uploading_is_never_swept(sweep_api: ApiHarness, make_study_zip,
                                                     monkeypatch: pytest.MonkeyPatch):
    """A sweep runs exactly in the window a crash would leave orphans in: inputs stored, row not inserted."""
    services = sweep_api.services
    reconciler = _reconciler(sweep_api)
    seen: dict[str, Any] = {}
    insert = services.jobs.create

    def sweep_then_insert(job: Any) -> Any:
        seen["inputs"] = services.store.list_keys(f"inputs/{job.id}/")
        seen["report"] = reconciler.sweep_orphans(utcnow() + timedelta(seconds=GRACE_S - 5))
        return insert(job)

    monkeypatch.setattr(services.jobs, "create", sweep_then_insert)
    job_id = _submit(sweep_api, make_study_zip(seed=3))
    assert seen["inputs"] and seen["report"].orphan_inputs == 0
    assert services.store.list_keys(f"inputs/{job_id}/") == seen["inputs"]
    assert reconciler.sweep_orphans(utcnow() + timedelta(days=30)).orphan_inputs == 0  # it has a row now
    assert services.store.list_keys(f"inputs/{job_id}/") == seen["inputs"]


def test_inputs_of_a_submission_that_died_before_its_insert_are_swept_after_the_grace(
        sweep_api: ApiHarness, make_study_zip, monkeypatch: pytest.MonkeyPatch):
    services = sweep_api.services

    def unreachable(job: Any) -> Any:
        raise TransientError("the database is unreachable", code=PlatformCode.DATABASE_UNAVAILABLE)

    monkeypatch.setattr(services.jobs, "create", unreachable)
    r = sweep_api.post_study(make_study_zip(seed=4))
    assert r.status_code == 503, r.text
    monkeypatch.undo()
    assert len(_folders(services.store, "inputs")) == 1  # kept by design: the commit may have happened
    reconciler = _reconciler(sweep_api)
    assert reconciler.sweep_orphans().orphan_inputs == 0  # younger than the grace
    assert reconciler.sweep_orphans(utcnow() + LATER).orphan_inputs == 1
    assert services.store.list_keys("inputs/") == []


def test_a_folder_is_as_young_as_its_newest_object(sweep_api: ApiHarness):
    store = sweep_api.services.store
    job_id = str(uuid.uuid4())
    _put(store, input_key(job_id, "part-0.dcm"))
    time.sleep(1.1)  # S3 listings carry whole seconds
    _put(store, input_key(job_id, "part-1.dcm"))
    t_first, t_last = sorted(o.modified for o in store.list_objects(f"inputs/{job_id}/"))
    assert t_first < t_last
    reconciler = _reconciler(sweep_api)
    between = t_first + (t_last - t_first) / 2 + timedelta(seconds=GRACE_S)  # the first part is past the grace
    assert reconciler.sweep_orphans(between).orphan_inputs == 0
    assert len(store.list_keys(f"inputs/{job_id}/")) == 2
    assert reconciler.sweep_orphans(t_last + timedelta(seconds=GRACE_S + 1)).orphan_inputs == 1
    assert store.list_keys(f"inputs/{job_id}/") == []


class _DyingStore:
    """A real store that fails on cue the way a dead one does: a listing that breaks after its first object,
    or deletes refused after the first one. Everything else goes to the real store."""

    def __init__(self, inner: ObjectStore, fault: str) -> None:
        self._inner = inner
        self.fault = fault
        self.down = False
        self._deletes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _dead(self) -> TransientError:
        return TransientError("the object store is unreachable", code=PlatformCode.STORE_UNAVAILABLE)

    def list_objects(self, prefix: str) -> Iterator[ListedObject]:
        for i, obj in enumerate(self._inner.list_objects(prefix)):
            if self.down and self.fault == "store_list" and i >= 1:
                raise self._dead()
            yield obj

    def delete_prefix(self, prefix: str) -> int:
        if self.down and self.fault == "store_delete" and self._deletes >= 1:
            raise self._dead()
        self._deletes += 1
        return self._inner.delete_prefix(prefix)


@pytest.mark.parametrize(("fault", "deleted_while_down"), [("store_list", 0), ("store_delete", 1), ("database", 0)])
def test_a_store_or_database_failing_mid_sweep_is_logged_and_finished_on_the_next_pass(
        sweep_api: ApiHarness, make_study_zip, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        fault: str, deleted_while_down: int):
    caplog.set_level(logging.WARNING)
    services = sweep_api.services
    failed = [_failed_with_outputs(sweep_api, make_study_zip(seed=10 + i)) for i in range(3)]
    store = _DyingStore(services.store, fault)
    reconciler = _reconciler(sweep_api, store)
    store.down = True
    if fault == "database":
        def unreachable(ids: Any) -> Any:
            raise TransientError("the database is unreachable", code=PlatformCode.DATABASE_UNAVAILABLE)
        monkeypatch.setattr(services.jobs, "statuses", unreachable)

    t0 = utcnow()
    while_down = reconciler.run_once(t0)  # no exception escapes
    assert while_down.orphan_outputs == deleted_while_down
    assert "orphan_sweep_interrupted" in caplog.text
    assert sum(bool(services.store.list_keys(f"outputs/{j}/")) for j in failed) == 3 - deleted_while_down

    store.down = False
    monkeypatch.undo()
    back = reconciler.run_once(t0 + timedelta(seconds=1))  # an interrupted sweep is due again on the next pass
    assert back.orphan_outputs == 3 - deleted_while_down
    assert all(services.store.list_keys(f"outputs/{j}/") == [] for j in failed)
    assert reconciler.run_once(t0 + timedelta(seconds=2)).orphan_outputs == 0  # done: not due for grace/4
    assert reconciler.sweep_orphans(t0 + timedelta(seconds=3)).orphan_outputs == 0
