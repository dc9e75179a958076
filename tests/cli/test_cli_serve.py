"""`echo4d serve` with no configuration, as a user runs it: key printed once, API + worker child on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from service_testkit import broken_study_zip_bytes, free_port, reconstruction_ready, stop_process, study_zip_bytes

ROOT = Path(__file__).resolve().parents[2]


class Served:
    def __init__(self, data_dir: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECHO4D_")}
        env.update({"OMP_NUM_THREADS": "1", "ECHO4D_HEARTBEAT_INTERVAL_S": "1", "ECHO4D_HEARTBEAT_STALE_S": "10"})
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "echo4d"), "serve", "--port", str(port), "--data-dir", str(data_dir)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        while not any(line.startswith("Echo4D API on") for line in self.lines):
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"echo4d serve exited: {self.lines}")
            self.lines.append(line.strip())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("the API never became healthy")

    @property
    def key(self) -> str | None:
        return next((line.split(": ", 1)[1] for line in self.lines if line.startswith("API key: ")), None)

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture()
def needs_reconstruction() -> None:
    reason = reconstruction_ready()
    if reason:
        pytest.skip(reason)


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    data_dir = tmp_path / "var"
    s = Served(data_dir, free_port())
    yield s, data_dir
    s.stop()


def _wait(url: str, headers: dict[str, str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(url, headers=headers).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job not finished in {timeout} s: {job}")


@pytest.mark.slow
def test_first_start_prints_a_key_and_the_worker_runs_jobs(served: tuple[Served, Path]):
    s, data_dir = served
    assert s.key and s.key.startswith("e4d_")
    assert "http://127.0.0.1:" in s.lines[-1]
    headers = {"Authorization": f"Bearer {s.key}"}
    checks = httpx.get(s.url + "/readyz").json()["checks"]
    assert checks == {"database": "ok", "broker": "ok", "store": "ok", "disk": "ok"}
    r = httpx.post(s.url + "/v1/studies", headers=headers,
                   files={"file": ("s.zip", broken_study_zip_bytes(), "application/zip")})
    assert r.status_code == 202
    job = _wait(s.url + r.headers["location"], headers, 60)
    assert job["status"] == "failed" and job["error"]["code"] == "empty_mask"
    assert (data_dir / "echo4d.sqlite3").is_file()
    assert s.key not in (data_dir / "echo4d.sqlite3").read_bytes().decode("latin-1")  # only the hash is stored
    assert httpx.get(s.url + "/v1/jobs").status_code == 401


@pytest.mark.slow
def test_restart_keeps_state_and_prints_no_new_key(tmp_path: Path):
    data_dir = tmp_path / "var"
    first = Served(data_dir, free_port())
    key = first.key
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.post(first.url + "/v1/studies", headers=headers,
                   files={"file": ("s.zip", broken_study_zip_bytes(), "application/zip")})
    before = _wait(first.url + r.headers["location"], headers, 60)
    first.stop()
    second = Served(data_dir, free_port())
    try:
        assert second.key is None
        after = httpx.get(second.url + r.headers["location"], headers=headers).json()
        assert after == before
    finally:
        second.stop()


@pytest.mark.slow
def test_embedded_study_to_mesh(needs_reconstruction: None, served: tuple[Served, Path]):
    s, _ = served
    headers = {"Authorization": f"Bearer {s.key}"}
    r = httpx.post(s.url + "/v1/studies", headers=headers, data={"profile": "smoke"},
                   files={"file": ("s.zip", study_zip_bytes(views=("A4C", "A2C"), n_frames=8), "application/zip")})
    job = _wait(s.url + r.headers["location"], headers, 240)
    assert job["status"] == "succeeded", job
    glb = httpx.get(s.url + job["artifacts"]["mesh.glb"]["href"], headers=headers)
    assert glb.status_code == 200 and glb.headers["content-type"] == "model/gltf-binary"
    assert glb.content[:4] == b"glTF"
    report = json.loads(httpx.get(s.url + job["artifacts"]["report.json"]["href"], headers=headers).content)
    from models.export.report import validate_report

    validate_report(report)


REAL_NIFTI = ROOT.parent / "shared" / "data" / "real-echo" / "a4c_sequence.nii.gz"


def _ybr_color_stow() -> tuple[bytes, str]:
    from pydicom import examples

    raw = Path(examples.get_path("ybr_color")).read_bytes()
    body = b"--b0\r\nContent-Type: application/dicom\r\n\r\n" + raw + b"\r\n--b0--\r\n"
    return body, 'multipart/related; type="application/dicom"; boundary=b0'


def _nifti_upload() -> dict[str, object]:
    if not REAL_NIFTI.is_file():
        pytest.skip(f"{REAL_NIFTI} is absent (the real A4C cine lives in ../shared/data/real-echo)")
    # a4c_sequence.nii.gz stores no frame time (see its NOTICE.md): the manifest gives the view and 25 fps.
    return {"files": {"files": ("a4c_sequence.nii.gz", REAL_NIFTI.read_bytes(), "application/gzip")},
            "data": {"profile": "smoke", "manifest": json.dumps({"view": "A4C", "fps": 25})}}


@pytest.mark.slow
@pytest.mark.parametrize("route", ["stow-ybr_color", "studies-a4c_nifti"])
def test_real_bmode_cine_to_mesh_with_quality(needs_reconstruction: None, served: tuple[Served, Path], route: str):
    """A real B-mode A4C cine (pydicom's ybr_color DICOM over STOW-RS; the A4C NIfTI through /v1/studies) is
    segmented by the shipped segmenter in the worker and reconstructed; the quality gate is everywhere."""
    s, _ = served
    headers = {"Authorization": f"Bearer {s.key}"}
    if route.startswith("stow"):
        body, ctype = _ybr_color_stow()
        r = httpx.post(s.url + "/v1/dicomweb/studies?profile=smoke&view=A4C", content=body,
                       headers={**headers, "Content-Type": ctype}, timeout=60)
        assert r.status_code == 200, r.text
    else:
        r = httpx.post(s.url + "/v1/studies", headers=headers, timeout=60, **_nifti_upload())  # type: ignore[arg-type]
        assert r.status_code == 202, r.text
    job = _wait(urljoin(s.url, r.headers["location"]), headers, 400)  # STOW-RS: absolute; /v1/studies: relative
    assert job["status"] == "succeeded", job
    assert job["quality"]["level"] in ("good", "review", "unreliable")
    assert job["quality"] == job["summary"]["quality"]
    assert any("one view only" in reason for reason in job["quality"]["reasons"])  # one view: never "good"
    report = json.loads(httpx.get(s.url + job["artifacts"]["report.json"]["href"], headers=headers).content)
    from models.export.report import validate_report

    validate_report(report)
    a4c = report["quality"]["views"]["A4C"]
    assert a4c["mask_source"] == "segmenter" and 0.0 < a4c["segmentation_confidence"] <= 1.0
    assert 0.0 <= a4c["segmentation_fac_spread"] <= 1.0  # measured at ingest in the worker, carried to the report
    assert report["quality"]["level"] == job["quality"]["level"]
    assert any(w.startswith("ingest: ") and "segmenter" in w for w in report["warnings"])
    glb = httpx.get(s.url + job["artifacts"]["mesh.glb"]["href"], headers=headers).content
    header_len = int.from_bytes(glb[12:16], "little")
    asset = json.loads(glb[20 : 20 + header_len])["asset"]
    assert asset["extras"]["quality"]["level"] == job["quality"]["level"]
    assert httpx.get(s.url + job["artifacts"]["preview.png"]["href"], headers=headers).content[:4] == b"\x89PNG"


@pytest.mark.parametrize(("env", "needle"), [
    ({"ECHO4D_DEVICE": "gpu"}, "ECHO4D_DEVICE"),
    ({"ECHO4D_DEFAULT_PROFILE": "fast"}, "ECHO4D_DEFAULT_PROFILE"),
    ({"ECHO4D_JOB_SOFT_TIME_LIMIT_S": "100", "ECHO4D_JOB_HARD_TIME_LIMIT_S": "50"}, "invalid settings"),
])
def test_settings_the_environment_gets_wrong_are_one_line_not_a_traceback(tmp_path: Path, env: dict[str, str],
                                                                          needle: str):
    from typer.testing import CliRunner

    from cli import app

    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path)], env=env)
    assert result.exit_code == 2
    assert needle in result.output and "Traceback" not in result.output
    assert "gpu" not in result.output and "fast" not in result.output  # refused values are not echoed
    assert list(tmp_path.iterdir()) == []  # nothing was started: no database, no key, no object folder
