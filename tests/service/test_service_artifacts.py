"""Artifact downloads: content types, ETag/If-None-Match, Range (206/416); presigned redirect on MinIO.

The objects here are arbitrary bytes placed by the test: what is under test is the HTTP delivery,
not a reconstruction (the end-to-end tests download real ones).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from service_testkit import ApiHarness, embedded_settings, succeed_with

PAYLOAD = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture()
def done(api: ApiHarness, make_study_zip: Callable[..., bytes]) -> tuple[ApiHarness, str]:
    job_id = api.post_study(make_study_zip()).json()["id"]
    succeed_with(api, job_id, {"mesh.glb": PAYLOAD, "report.json": b'{"ok": true}', "meshes": b"PK..."})
    return api, job_id


def test_job_lists_artifact_links(done: tuple[ApiHarness, str]):
    api, job_id = done
    job = api.client.get(f"/v1/jobs/{job_id}", headers=api.auth()).json()
    assert job["status"] == "succeeded" and job["progress"] == 100.0
    assert job["artifacts"]["mesh.glb"]["href"] == f"/v1/jobs/{job_id}/artifacts/mesh.glb"
    assert job["artifacts"]["mesh.glb"]["content_type"] == "model/gltf-binary"
    assert "cancel" not in job["links"]


@pytest.mark.parametrize(("name", "ctype"), [("mesh.glb", "model/gltf-binary"), ("report.json", "application/json"),
                                             ("meshes", "application/zip")])
def test_download_with_content_type_and_etag(done: tuple[ApiHarness, str], name: str, ctype: str):
    api, job_id = done
    r = api.client.get(f"/v1/jobs/{job_id}/artifacts/{name}", headers=api.auth())
    assert r.status_code == 200 and r.headers["content-type"].startswith(ctype)
    assert r.headers["etag"].startswith('"') and r.headers["accept-ranges"] == "bytes"
    again = api.client.get(f"/v1/jobs/{job_id}/artifacts/{name}",
                           headers={**api.auth(), "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(("header", "start", "end"), [("bytes=0-99", 0, 99), ("bytes=16000-", 16000, 16383),
                                                      ("bytes=-10", 16374, 16383), ("bytes=100-999999", 100, 16383)])
def test_range_requests(done: tuple[ApiHarness, str], header: str, start: int, end: int):
    api, job_id = done
    r = api.client.get(f"/v1/jobs/{job_id}/artifacts/mesh.glb", headers={**api.auth(), "Range": header})
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {start}-{end}/{len(PAYLOAD)}"
    assert r.content == PAYLOAD[start:end + 1]


def test_unsatisfiable_range_and_stale_if_range(done: tuple[ApiHarness, str]):
    api, job_id = done
    r = api.client.get(f"/v1/jobs/{job_id}/artifacts/mesh.glb", headers={**api.auth(), "Range": "bytes=999999-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{len(PAYLOAD)}"
    assert r.headers["content-type"] == "application/problem+json"
    full = api.client.get(f"/v1/jobs/{job_id}/artifacts/mesh.glb",
                          headers={**api.auth(), "Range": "bytes=0-9", "If-Range": '"stale"'})
    assert full.status_code == 200 and full.content == PAYLOAD


def test_artifact_not_produced_is_404(done: tuple[ApiHarness, str]):
    api, job_id = done
    assert api.client.get(f"/v1/jobs/{job_id}/artifacts/preview.png", headers=api.auth()).status_code == 404


def test_minio_store_redirects_to_a_presigned_url(api_factory, tmp_data_dir: Path, moto_endpoint: str, bucket: str,
                                                  make_study_zip: Callable[..., bytes]):
    settings = embedded_settings(tmp_data_dir, store_backend="minio", s3_endpoint=moto_endpoint, s3_bucket=bucket,
                                 s3_access_key="testing", s3_secret_key="testing")
    api = api_factory(settings)
    job_id = api.post_study(make_study_zip()).json()["id"]
    succeed_with(api, job_id, {"mesh.glb": PAYLOAD, "report.json": b"{}"})
    r = api.client.get(f"/v1/jobs/{job_id}/artifacts/mesh.glb", headers=api.auth(), follow_redirects=False)
    assert r.status_code == 307 and "X-Amz-Signature" in r.headers["location"]
    assert httpx.get(r.headers["location"]).content == PAYLOAD


def test_minio_store_proxies_when_presign_is_off(api_factory, tmp_data_dir: Path, moto_endpoint: str, bucket: str,
                                                 make_study_zip: Callable[..., bytes]):
    settings = embedded_settings(tmp_data_dir, store_backend="minio", s3_endpoint=moto_endpoint, s3_bucket=bucket,
                                 s3_access_key="testing", s3_secret_key="testing", s3_presign=False)
    api = api_factory(settings)
    job_id = api.post_study(make_study_zip()).json()["id"]
    succeed_with(api, job_id, {"mesh.glb": PAYLOAD, "report.json": b"{}"})
    r = api.client.get(f"/v1/jobs/{job_id}/artifacts/mesh.glb", headers={**api.auth(), "Range": "bytes=5-9"})
    assert r.status_code == 206 and r.content == PAYLOAD[5:10]
