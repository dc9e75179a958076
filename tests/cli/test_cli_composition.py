"""The one composition root (`cli.composition`): the API alone never starts a worker; `echo4d serve`'s app does,
in embedded mode only (the running child itself is tested in tests/worker/test_worker_embedded.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from service_testkit import embedded_settings

from cli.composition import embedded_worker
from service.app import create_app
from service.context import build_services


def test_the_api_alone_starts_no_worker(tmp_data_dir: Path):
    settings = embedded_settings(tmp_data_dir, embedded_worker=True)
    services = build_services(settings)
    try:
        with TestClient(create_app(settings, services=services)) as client:
            assert client.get("/healthz").status_code == 200
            assert not hasattr(client.app.state, "embedded_worker")  # type: ignore[attr-defined]
    finally:
        services.close()


def test_the_embedded_worker_hook_builds_nothing_when_the_settings_turn_it_off(tmp_data_dir: Path):
    services = build_services(embedded_settings(tmp_data_dir, embedded_worker=True))
    try:
        app = FastAPI()
        off = replace(services, settings=embedded_settings(tmp_data_dir, embedded_worker=False))
        assert embedded_worker(app, off) == ()
        assert not hasattr(app.state, "embedded_worker")
    finally:
        services.close()
