"""Deployment files, checked offline: compose, Dockerfiles, Prometheus, Grafana, Kubernetes (+ KEDA)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from jobcore.metrics import Metrics
from jobcore.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SETTINGS_VARS = {f"ECHO4D_{name.upper()}" for name in Settings.model_fields}


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _k8s_docs() -> list[dict[str, Any]]:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for name in kust["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def test_compose_has_every_service_and_a_gpu_worker():
    services = _compose()["services"]
    assert {"api", "worker", "worker-cpu", "postgres", "redis", "minio", "prometheus", "grafana"} <= set(services)
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert services["worker-cpu"]["profiles"] == ["cpu"] and "deploy" not in services["worker-cpu"]
    for name in ("api", "worker"):
        env = services[name]["environment"]
        unknown = {k for k in env if k.startswith("ECHO4D_")} - SETTINGS_VARS
        assert not unknown, unknown


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_passes():
    command = _compose_command()
    if command is None:
        pytest.skip("neither the `docker compose` plugin nor docker-compose is installed")
    for extra in ([], ["--profile", "cpu"]):
        out = subprocess.run([*command, "-f", str(ROOT / "docker-compose.yml"), *extra, "config", "--quiet"],
                             capture_output=True, text=True, cwd=ROOT)
        assert out.returncode == 0, out.stderr


def test_dockerfiles():
    api = (ROOT / "Dockerfile.api").read_text()
    installs = [line for line in api.splitlines() if "pip install" in line]
    assert installs and all('".[api]"' in line and "torch" not in line and "worker" not in line for line in installs)
    assert "assert 'torch' not in sys.modules" in api  # the build fails if the API image imports torch
    # the web viewer's three.js comes from the npm package at build time, and the build fails without it
    assert re.search(r"^FROM node:\S+ AS viewer", api, flags=re.M) and "node build.mjs" in api
    assert "viewer_ready" in api and "COPY --from=viewer" in api
    assert "**/node_modules" in (ROOT / ".dockerignore").read_text()
    worker = (ROOT / "Dockerfile.worker").read_text()
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:\S+runtime", worker, flags=re.M)
    pinned = re.search(r'"torch==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned is not None
    assert f"ARG TORCH_VERSION={pinned.group(1)}" in worker  # the image pin follows pyproject


def _exposed_metric_names() -> set[str]:
    names = {"echo4d_jobs", "echo4d_queue_depth"}  # StateCollector
    for family in Metrics().registry.collect():
        names.add(family.name)
        names.update(s.name for s in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return names


def test_grafana_dashboard_uses_only_metrics_we_export():
    dash = json.loads((ROOT / "deploy/grafana/dashboards/echo4d.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = set(re.findall(r"echo4d_[a-z_]+", " ".join(exprs)))
    assert used <= _exposed_metric_names(), used - _exposed_metric_names()
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for needed in ("request rate", "latency", "queue depth", "jobs by status", "per stage", "utilisation"):
        assert needed in titles
    for provisioning in (ROOT / "deploy/grafana/provisioning").rglob("*.yml"):
        assert yaml.safe_load(provisioning.read_text())["apiVersion"] == 1


def test_prometheus_scrapes_api_and_workers():
    cfg = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert set(jobs) == {"echo4d-api", "echo4d-worker"}
    assert jobs["echo4d-worker"]["dns_sd_configs"][0]["port"] == Settings().worker_metrics_port


_META = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "minLength": 1}}}
SCHEMAS: dict[str, dict[str, Any]] = {
    "Deployment": {"type": "object", "required": ["spec"], "properties": {"spec": {
        "type": "object", "required": ["selector", "template"], "properties": {
            "replicas": {"type": "integer", "minimum": 0},
            "template": {"type": "object", "required": ["metadata", "spec"], "properties": {"spec": {
                "type": "object", "required": ["containers"], "properties": {"containers": {
                    "type": "array", "minItems": 1, "items": {"type": "object", "required": ["name", "image"]}}}}}}}}}},
    "Service": {"type": "object", "required": ["spec"], "properties": {"spec": {
        "type": "object", "required": ["selector", "ports"]}}},
    "HorizontalPodAutoscaler": {"type": "object", "required": ["spec"], "properties": {"spec": {
        "type": "object", "required": ["scaleTargetRef", "maxReplicas"]}}},
    "ScaledObject": {"type": "object", "required": ["spec"], "properties": {"spec": {
        "type": "object", "required": ["scaleTargetRef", "triggers"], "properties": {"triggers": {
            "type": "array", "minItems": 1, "items": {"type": "object", "required": ["type", "metadata"]}}}}}},
    "ConfigMap": {"type": "object", "required": ["data"]},
}


def test_kubernetes_manifests_are_consistent():
    docs = _k8s_docs()
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), doc
        jsonschema.validate(doc["metadata"], _META)
        if doc["kind"] in SCHEMAS:
            jsonschema.validate(doc, SCHEMAS[doc["kind"]])
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    deployments = by_kind["Deployment"]
    assert set(deployments) == {"echo4d-api", "echo4d-worker"}
    config = by_kind["ConfigMap"]["echo4d-config"]["data"]
    assert set(config) <= SETTINGS_VARS
    for dep in deployments.values():
        template = dep["spec"]["template"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
        for container in template["spec"]["containers"]:
            refs = [e["configMapRef"]["name"] for e in container.get("envFrom", []) if "configMapRef" in e]
            assert all(r in by_kind["ConfigMap"] for r in refs)
            assert {e["name"] for e in container.get("env", [])} <= SETTINGS_VARS
    gpu = deployments["echo4d-worker"]["spec"]["template"]["spec"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["terminationGracePeriodSeconds"] > int(config["ECHO4D_JOB_HARD_TIME_LIMIT_S"])
    scaled = by_kind["ScaledObject"]["echo4d-worker"]
    assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == config["ECHO4D_QUEUE_NAME"]
    assert trigger["authenticationRef"]["name"] in by_kind["TriggerAuthentication"]
    hpa = by_kind["HorizontalPodAutoscaler"]["echo4d-api"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "echo4d-api"  # the API scales on its own
    service = by_kind["Service"]["echo4d-api"]
    assert service["spec"]["selector"].items() <= deployments["echo4d-api"]["spec"]["template"]["metadata"][
        "labels"].items()


def test_compose_requires_real_secrets_and_pins_every_image():
    """Issue #15: no ``change-me`` fallbacks (``${VAR:?}`` makes compose refuse to start), no ``:latest``."""
    text = (ROOT / "docker-compose.yml").read_text()
    assert "change-me-in-production" not in text
    for var in ("ECHO4D_API_KEY_PEPPER", "ECHO4D_WEBHOOK_SECRET"):
        assert re.search(rf"\$\{{{var}:\?[^}}]+\}}", text), var
    images = [svc.get("image", "") for svc in _compose()["services"].values()]
    assert images and all(":" in i and not i.endswith(":latest") for i in images), images
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all(str(i["newTag"]) != "latest" for i in kust["images"])
    for dockerfile in ("Dockerfile.api", "Dockerfile.worker"):
        assert "pip install -c constraints.txt" in (ROOT / dockerfile).read_text(), dockerfile
    assert "fastapi==" in (ROOT / "deploy" / "constraints.txt").read_text()


def test_compose_publishes_on_localhost_and_checks_every_long_running_service():
    services = _compose()["services"]
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port.startswith("${ECHO4D_BIND_ADDRESS:-127.0.0.1}:"), (name, port)
    for name in ("api", "worker", "worker-cpu", "postgres", "redis", "minio", "prometheus", "grafana"):
        assert services[name].get("healthcheck", {}).get("test"), name
    assert any(v.endswith(":/prometheus") for v in services["prometheus"]["volumes"])
    assert "prometheus-data" in _compose()["volumes"]


def test_grafana_dashboard_picks_its_datasource_and_leaves_metrics_out_of_latency():
    dash = json.loads((ROOT / "deploy/grafana/dashboards/echo4d.json").read_text())
    assert [v["name"] for v in dash["templating"]["list"] if v["type"] == "datasource"] == ["datasource"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dash["panels"])
    latency = [t["expr"] for p in dash["panels"] if "latency" in p["title"].lower() for t in p["targets"]]
    assert latency and all('route!="/metrics"' in e for e in latency)
