"""``echo4d serve`` (API, plus a worker child process when no broker is set), ``echo4d worker``, ``echo4d admin``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.common import user_errors

admin_app = typer.Typer(help="Administration: API keys, migrations, one reconciler pass.", no_args_is_help=True)

DataDir = Annotated[Path | None, typer.Option("--data-dir", help="State folder (SQLite + objects); default ./var.")]


def _settings(**overrides: Any) -> Any:
    from jobcore.settings import Settings

    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    data_dir: DataDir = None,
    worker: Annotated[bool | None, typer.Option("--worker/--no-worker",
                                                help="Run the worker child process (embedded mode).")] = None,
) -> None:
    """Run the Echo4D API. With no configuration: SQLite + a local folder under ./var and a worker child process.

    On the first start a default tenant and an API key are created; the key is printed once.
    """
    with user_errors():
        import uvicorn

        from cli.composition import serving_app
        from jobcore.logging import configure_logging
        from service.auth import create_key
        from service.context import build_services

        settings = _settings(host=host, port=port, data_dir=data_dir, embedded_worker=worker)
        configure_logging(settings)
        services = build_services(settings)
        try:
            if settings.embedded and services.tenants.count() == 0:  # distributed: echo4d admin create-key
                _, key = create_key(services.tenants, "default", services.pepper,
                                    label="created by the first `echo4d serve`")
                typer.echo(f"API key: {key}")
                typer.echo("(shown once; only its hash is stored. More keys: echo4d admin create-key --tenant NAME)")
            mode = "embedded worker" if settings.embedded and settings.embedded_worker else "API only"
            typer.echo(f"Echo4D API on http://{settings.host}:{settings.port} ({mode}; docs at /docs)", err=False)
            typer.echo(f"Web viewer: http://{settings.host}:{settings.port}/v1/viewer (enter the API key there)")
            app = serving_app(settings, services=services)
            uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                        timeout_graceful_shutdown=10)
        finally:
            services.close()


def worker(
    pool: Annotated[str | None, typer.Option(help="Celery pool: solo (default), prefork, threads.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Processes/threads (prefork/threads pools).")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Port of this worker's /metrics (0: none).")] = None,
) -> None:
    """Run a Celery worker consuming the GPU queue (needs ECHO4D_BROKER_URL)."""
    with user_errors():
        settings = _settings(worker_pool=pool, worker_concurrency=concurrency, worker_metrics_port=metrics_port)
        if settings.broker_url is None:
            raise typer.BadParameter("set ECHO4D_BROKER_URL (redis://... or amqp://...); "
                                     "`echo4d serve` alone runs a worker child process")
        from service.auth import check_deployment_secrets

        check_deployment_secrets(settings)  # refuse to start, not fail each job later
        multiproc = settings.worker_pool == "prefork" and settings.metrics_multiproc_dir is not None
        if multiproc:
            from jobcore.settings import export_prometheus_multiproc_dir

            shutil.rmtree(settings.metrics_multiproc_dir, ignore_errors=True)  # stale files of dead processes
            settings.metrics_multiproc_dir.mkdir(parents=True, exist_ok=True)
            export_prometheus_multiproc_dir(settings.metrics_multiproc_dir)  # before prometheus_client loads
        from jobcore.logging import configure_logging
        from worker.worker_main import run_worker

        configure_logging(settings)
        run_worker(settings, multiprocess_metrics=multiproc)


@admin_app.command("create-key")
def create_key_cmd(
    tenant: Annotated[str, typer.Option(help="Tenant name (created if new).")],
    label: Annotated[str | None, typer.Option(help="Free-text label.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create an API key for TENANT and print it once (only its hash is stored)."""
    with user_errors():
        from service.auth import create_key
        from service.context import build_services

        settings = _settings(data_dir=data_dir)
        services = build_services(settings, queue=_no_queue())
        try:
            key_id, key = create_key(services.tenants, tenant, services.pepper, label)
        finally:
            services.close()
        typer.echo(f"key id: {key_id}")
        typer.echo(f"API key: {key}")


@admin_app.command("revoke-key")
def revoke_key_cmd(
    key: Annotated[str, typer.Argument(help="Key id (or the whole key).")], data_dir: DataDir = None,
) -> None:
    """Revoke a key: requests with it get 401 from now on."""
    with user_errors():
        from service.auth import parse_key_id
        from service.context import build_services

        services = build_services(_settings(data_dir=data_dir), queue=_no_queue())
        try:
            revoked = services.tenants.revoke_key(parse_key_id(key) or key)
        finally:
            services.close()
        if not revoked:
            typer.echo("no such active key", err=True)
            raise typer.Exit(1)
        typer.echo("revoked")


@admin_app.command("list-keys")
def list_keys_cmd(data_dir: DataDir = None) -> None:
    """Key ids, tenants, creation and revocation times (never the keys)."""
    with user_errors():
        from service.context import build_services

        services = build_services(_settings(data_dir=data_dir), queue=_no_queue())
        try:
            for k, tenant in services.tenants.list_keys():
                state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
                typer.echo(f"{k.key_id}\t{tenant}\t{k.created_at:%Y-%m-%d %H:%M}\t{state}\t{k.label or ''}")
        finally:
            services.close()


@admin_app.command("migrate")
def migrate_cmd(data_dir: DataDir = None) -> None:
    """Upgrade the database schema to the newest revision."""
    with user_errors():
        from jobcore.db.engine import make_engine, run_migrations

        settings = _settings(data_dir=data_dir)
        engine = make_engine(settings.resolved_database_url)
        run_migrations(engine)
        engine.dispose()
        typer.echo("database at the newest revision")


@admin_app.command("reconcile")
def reconcile_cmd(data_dir: DataDir = None) -> None:
    """Run one reconciler pass (requeue lost or stale jobs, retry webhooks, sweep orphaned store objects) and print
    what it did."""
    with user_errors():
        from jobcore.reconciler import Reconciler
        from jobcore.webhooks import WebhookSender
        from service.context import build_services

        settings = _settings(data_dir=data_dir)
        services = build_services(settings)
        try:
            webhooks = WebhookSender(settings, services.jobs, services.metrics)
            report = Reconciler(settings, services.jobs, services.queue, services.store, services.metrics,
                                webhooks).run_once()
        finally:
            services.close()
        typer.echo(" ".join(f"{k}={v}" for k, v in vars(report).items()))


def _no_queue() -> Any:
    from jobcore.queue import LocalQueue

    return LocalQueue()


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``worker`` and ``admin`` to the root app."""
    app.command("serve")(serve)
    app.command("worker")(worker)
    app.add_typer(admin_app, name="admin")
