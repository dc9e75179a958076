"""Results back to PACS: a real job on a DICOM cine builds the DICOM results, the API serves them as
multipart/related, and the worker pushes them to a C-STORE peer (a pynetdicom storage SCP run in-process on
127.0.0.1) and to a STOW-RS endpoint (an HTTP server run in-process); failed pushes are recorded, never fatal."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from dicom_kit import cardiac_masks, dicom_bytes, multipart_parts, read_dicom, storage_scp
from pydicom.uid import generate_uid
from service_testkit import ApiHarness, embedded_settings, reconstruction_ready, worker_context

from jobcore.settings import Settings
from worker.dicom_results import push_dicom
from worker.runner import Outcome, run_job

SR, STL, SC = "1.2.840.10008.5.1.4.1.1.88.34", "1.2.840.10008.5.1.4.1.1.104.3", "1.2.840.10008.5.1.4.1.1.7.4"


@pytest.fixture(scope="module")
def source_dicom() -> tuple[bytes, str]:
    study = str(generate_uid())
    raw = dicom_bytes(cardiac_masks(), view="A4C", StudyInstanceUID=study, SeriesInstanceUID=str(generate_uid()))
    return raw, study


def _run_dicom_job(api: ApiHarness, raw: bytes) -> dict[str, Any]:
    r = api.client.post("/v1/studies", headers=api.auth(), data={"profile": "smoke"},
                        files=[("files", ("a4c.dcm", raw, "application/dicom"))])
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    outcome = run_job(worker_context(api.services), job_id)
    job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
    assert outcome is Outcome.SUCCEEDED, job["error"]
    return dict(job)


@pytest.mark.slow
def test_a_dicom_job_returns_its_results_in_the_source_study_and_pushes_them(
    api_factory: Callable[..., ApiHarness], tmp_data_dir: Path, source_dicom: tuple[bytes, str],
) -> None:
    reason = reconstruction_ready()
    if reason:
        pytest.skip(reason)
    raw, study_uid = source_dicom
    source = read_dicom(raw)
    with storage_scp(ae_title="TEST-PACS") as peer:
        api = api_factory(embedded_settings(tmp_data_dir, dicom_push_host="127.0.0.1", dicom_push_port=peer.port,
                                            dicom_push_called_ae="TEST-PACS", dicom_push_calling_ae="E4D-TEST"))
        job = _run_dicom_job(api, raw)
        received = list(peer.received)
    assert job["summary"]["dicom_push"] == {"c_store": {"ok": True, "sent": 4, "detail": "ok"}}
    assert peer.calling_ae_titles == ["E4D-TEST"] * 4

    r = api.client.get(f"/v1/jobs/{job['id']}/dicom", headers=api.auth())
    assert r.status_code == 200 and r.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    parts = multipart_parts(r.content, r.headers["content-type"])
    assert [h["content-type"] for h, _ in parts] == ["application/dicom"] * 4
    served = [read_dicom(body) for _, body in parts]
    assert [str(ds.SOPClassUID) for ds in served] == [SR, STL, SC, SC]
    assert {str(ds.StudyInstanceUID) for ds in served} == {study_uid}
    # what the peer stored is what the API serves
    assert sorted(str(ds.SOPInstanceUID) for ds in received) == sorted(str(ds.SOPInstanceUID) for ds in served)

    sr = served[0]
    (study_ref,) = sr.CurrentRequestedProcedureEvidenceSequence
    refs = {str(ref.ReferencedSOPInstanceUID) for series in study_ref.ReferencedSeriesSequence
            for ref in series.ReferencedSOPSequence}
    assert str(source.SOPInstanceUID) in refs and str(served[1].SOPInstanceUID) in refs
    ef = _measured(sr, "18043-0")
    assert ef == pytest.approx(job["summary"]["ef_percent"], abs=0.01)
    assert _measured(sr, "18026-5") == pytest.approx(job["summary"]["edv_ml"], abs=0.01)


def _measured(sr: Any, loinc: str) -> float:
    """The numeric value of the measurement named ``loinc`` anywhere in the SR content tree."""
    stack = list(sr.ContentSequence)
    while stack:
        item = stack.pop()
        name = item.ConceptNameCodeSequence[0] if "ConceptNameCodeSequence" in item else None
        if item.ValueType == "NUM" and name is not None and name.CodeValue == loinc:
            return float(item.MeasuredValueSequence[0].NumericValue)
        stack.extend(item.get("ContentSequence", []))
    raise AssertionError(f"no measurement {loinc}")


# ----------------------------------------------------------------------------- the pushes alone
@pytest.fixture(scope="module")
def dicom_files(tmp_path_factory: pytest.TempPathFactory, source_dicom: tuple[bytes, str]) -> list[Path]:
    folder = tmp_path_factory.mktemp("push")
    paths = []
    for i in range(3):
        path = folder / f"{i}.dcm"
        path.write_bytes(dicom_bytes(cardiac_masks(3), StudyInstanceUID=source_dicom[1],
                                     SeriesInstanceUID="1.2.3", SOPInstanceUID=f"1.2.3.{i + 1}"))
        paths.append(path)
    return paths


def _settings(tmp_path: Path, **values: Any) -> Settings:
    return Settings(data_dir=tmp_path, dicom_push_timeout_s=5, **values)


def test_nothing_is_pushed_without_a_peer(tmp_path: Path, dicom_files: list[Path]) -> None:
    assert push_dicom(_settings(tmp_path), dicom_files) == {}


@pytest.mark.parametrize(("status", "ok"), [(0x0000, True), (0xA700, False)])
def test_c_store_reports_what_the_peer_answered(tmp_path: Path, dicom_files: list[Path], status: int,
                                                ok: bool) -> None:
    with storage_scp(status=status) as peer:
        outcome = push_dicom(_settings(tmp_path, dicom_push_host="127.0.0.1", dicom_push_port=peer.port,
                                       dicom_push_called_ae=peer.ae_title), dicom_files)
    assert len(peer.received) == 3
    assert outcome["c_store"]["ok"] is ok and outcome["c_store"]["sent"] == (3 if ok else 0)
    if not ok:
        assert "status 0xA700" in outcome["c_store"]["detail"]


def test_an_unreachable_peer_is_recorded_not_raised(tmp_path: Path, dicom_files: list[Path]) -> None:
    from service_testkit import free_port

    outcome = push_dicom(_settings(tmp_path, dicom_push_host="127.0.0.1", dicom_push_port=free_port()), dicom_files)
    assert outcome == {"c_store": {"ok": False, "sent": 0, "detail": "the peer did not accept the association"}}


class _StowServer:
    """A STOW-RS endpoint in a thread: records each request and answers ``status``."""

    def __init__(self, status: int) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/dicom-web/studies"


@pytest.fixture(params=[200, 409])
def stow(request: pytest.FixtureRequest) -> Iterator[tuple[_StowServer, int]]:
    server = _StowServer(request.param)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server, request.param
    server.server.shutdown()
    thread.join(5)


def test_stow_rs_posts_one_multipart_request(tmp_path: Path, dicom_files: list[Path],
                                             stow: tuple[_StowServer, int]) -> None:
    server, status = stow
    outcome = push_dicom(_settings(tmp_path, dicom_stow_url=server.url, dicom_stow_token="s3cret"), dicom_files)
    ((path, headers, body),) = server.requests
    assert path == "/dicom-web/studies" and headers["authorization"] == "Bearer s3cret"
    parts = multipart_parts(body, headers["content-type"])
    assert headers["content-type"].startswith('multipart/related; type="application/dicom"')
    assert [read_dicom(p).SOPInstanceUID for _, p in parts] == ["1.2.3.1", "1.2.3.2", "1.2.3.3"]
    if status == 200:
        assert outcome == {"stow_rs": {"ok": True, "sent": 3, "detail": "ok"}}
    else:
        assert outcome["stow_rs"]["ok"] is False and "HTTP 409" in outcome["stow_rs"]["detail"]
