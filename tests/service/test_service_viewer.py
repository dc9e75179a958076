"""The web viewer: pages and static files served by the API (no CDN), the sample case, and a real browser run
(Debian's chromium driven by playwright-core) over a finished job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from service_testkit import ApiHarness, free_port, succeed_with

from service.api import viewer

ROOT = Path(__file__).resolve().parents[2]
CHECK_SCRIPT = ROOT / "tests" / "service" / "viewer_check.mjs"
PLAYWRIGHT = ROOT / "service" / "viewer" / "node_modules" / "playwright-core" / "package.json"
CHROMIUM = Path("/usr/bin/chromium")


def _built() -> None:
    reason = viewer.viewer_ready()
    if reason:
        pytest.skip(reason)


# ----------------------------------------------------------------------------- pages and static files
def test_pages_load_without_a_key_and_carry_a_strict_policy(api: ApiHarness) -> None:
    _built()
    for path in ("/v1/viewer", "/v1/jobs/3f2c6a1e-5d7b-4f0a-9a59-0c1d2e3f4a5b/viewer"):
        r = api.client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "https://" not in r.text and "http://" not in r.text  # nothing from another origin
    js = api.client.get("/v1/viewer/static/vendor/three/build/three.module.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "REVISION" in api.client.get("/v1/viewer/static/vendor/three/build/three.core.js").text
    # the data stays behind the key
    assert api.client.get("/v1/jobs").status_code == 401


def test_no_script_loads_from_outside_the_api(api: ApiHarness) -> None:
    """Every import in the viewer's own modules and in the copied three.js addons is relative (no CDN, no
    bare specifier that would need an import map)."""
    _built()
    import re

    static = viewer.STATIC_DIR
    files = [*static.glob("*.js"), *static.glob("*.html"), *(static / "vendor").rglob("examples/**/*.js")]
    statement = re.compile(r"""^\s*(?:(?:import|export|\})[^'"\n]*?from\s*|import\s*)['"]([^'"]+)['"]""", re.M)
    checked = 0
    for path in files:
        text = path.read_text()
        targets = statement.findall(text) + re.findall(r"""(?:src|href)=['"]([^'"#]+)['"]""", text)
        for target in targets:
            checked += 1
            local = ("./", "../", "/v1/viewer/static/", "/v1/viewer", "data:")
            assert target.startswith(local), f"{path.name}: {target}"
    assert checked > 10


def test_pages_say_why_when_three_is_not_built(api: ApiHarness, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setattr(viewer, "VENDOR_MARKER", tmp_path / "missing.js")
    r = api.client.get("/v1/viewer")
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "npm" in r.json()["detail"]


def test_pages_are_in_the_openapi_document(api: ApiHarness) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    assert "/v1/viewer" in paths and "/v1/jobs/{job_id}/viewer" in paths


# ----------------------------------------------------------------------------- the sample case
def test_the_committed_sample_is_what_the_generator_writes() -> None:
    pytest.importorskip("scipy", reason="the sample is generated with the cohort code (worker extras)")
    import io
    import zipfile

    from service.viewer.sample import SAMPLE_PATH, sample_study_zip

    # compared by content, not bytes: another zlib may compress the same members differently
    committed, fresh = zipfile.ZipFile(SAMPLE_PATH), zipfile.ZipFile(io.BytesIO(sample_study_zip()))
    assert committed.namelist() == fresh.namelist()
    assert json.loads(committed.read("study.json")) == json.loads(fresh.read("study.json"))
    for name in committed.namelist():
        if name.endswith(".npy"):
            a, b = (np.load(io.BytesIO(z.read(name))) for z in (committed, fresh))
            assert a.shape == b.shape and a.dtype == b.dtype == np.uint8, name
            # floating point may flip an edge pixel on another CPU; anything more is a stale sample
            assert np.mean(a != b) < 1e-4, f"{name} differs: regenerate with echo4d sample-study"


def test_the_sample_is_a_valid_study_the_api_accepts(api: ApiHarness) -> None:
    from service.viewer.sample import SAMPLE_PATH

    served = api.client.get("/v1/viewer/static/sample-study.zip")
    assert served.status_code == 200 and served.content == SAMPLE_PATH.read_bytes()
    r = api.post_study(served.content)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "queued"


# ----------------------------------------------------------------------------- a real browser
def _browser_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed (the browser test drives chromium from node)"
    if not PLAYWRIGHT.is_file():
        return "playwright-core is not installed: run `make install` (npm ci in service/viewer)"
    if not CHROMIUM.is_file():
        return ("chromium is not installed at /usr/bin/chromium "
                "(`apt-get install chromium`; make install does it as root)")
    return viewer.viewer_ready()


def _finished_job_blobs(tmp_path: Path) -> dict[str, bytes]:
    """Real exporter outputs (report.json, mesh.glb, views.json) of a small beating ellipsoid whose 'observed'
    masks are its own slices (a fast stand-in for a reconstruction)."""
    import importlib.util

    from models.export.writer import write_outputs
    from models.geometry.frames import ImagePlane
    from models.geometry.mesh import Mesh
    from models.geometry.slicing import slice_mask
    from models.study import Study, ViewSequence

    path = ROOT / "tests" / "models" / "export" / "conftest.py"
    spec = importlib.util.spec_from_file_location("export_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    make_beating_result = module.make_beating_result
    result = make_beating_result(n_frames=8, subdivisions=3)
    views = {}
    for fit in result.view_fits:
        plane = ImagePlane((160, 160), (0.7, 0.7), fit.pose)
        masks = np.stack([slice_mask(Mesh(v, result.faces), plane) for v in result.vertices])
        views[fit.view] = ViewSequence(fit.view, masks, (0.7, 0.7), 30.0)
    files = write_outputs(result, tmp_path / "out", {"job_id": "browser-test"}, Study(views))
    return {name: files[name].read_bytes() for name in ("report.json", "mesh.glb", "views.json", "preview.png")}


@pytest.fixture()
def live_api(api: ApiHarness) -> Iterator[tuple[str, ApiHarness]]:
    """The same app on a real port (uvicorn in a thread), sharing the harness's services."""
    import uvicorn

    from service.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(api.services.settings, services=api.services),
                                           host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", api
    server.should_exit = True
    thread.join(timeout=10)


def test_viewer_in_a_real_browser(live_api: tuple[str, ApiHarness], tmp_path: Path) -> None:
    reason = _browser_missing()
    if reason:
        pytest.skip(reason)
    url, api = live_api
    job_id = api.post_study(Path(viewer.STATIC_DIR / "sample-study.zip").read_bytes()).json()["id"]
    succeed_with(api, job_id, _finished_job_blobs(tmp_path))
    key_file = tmp_path / "key"
    key_file.write_text(api.key)
    key_file.chmod(0o600)
    shot = tmp_path / "viewer.png"
    started = time.monotonic()
    proc = subprocess.run(["node", str(CHECK_SCRIPT), "--url", url, "--job", job_id, "--key-file", str(key_file),
                           "--shot", str(shot), "--sample"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"})
    elapsed = time.monotonic() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from the browser script: {proc.stdout[-2000:]} {proc.stderr[-2000:]}"
    seen: dict[str, Any] = json.loads(lines[-1])
    assert seen["ok"], seen
    assert seen["n_frames"] == 8 and seen["n_views"] == 2
    assert seen["lit_fraction"] > 0.01  # the mesh canvas is not blank
    assert seen["mesh_changed"] and seen["views_changed"]  # the slider changed the frame
    assert not seen["url_has_key"] and seen["session_has_key"]
    assert not seen["foreign_requests"] and not seen["console_errors"], seen
    print("browser check:", json.dumps(seen))
    assert seen["metrics"][3].endswith("%")
    assert shot.stat().st_size > 10_000
    # the sample button POSTed a study through the API with the key from the page
    assert api.services.jobs.get(seen["sample_job"]) is not None
    assert elapsed < 30, f"the browser test took {elapsed:.1f} s"
