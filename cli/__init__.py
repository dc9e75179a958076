"""The ``echo4d`` console script: one entry point for every job a person runs.

Each sub-command lives in its own module and imports heavy dependencies (torch, models)
inside the command body, so ``echo4d --help`` stays fast and torch-free.
"""

from __future__ import annotations

import typer

from cli import (
    bench,
    bench_api,
    bench_prior,
    bench_quality,
    bench_recon,
    bench_segment,
    cohort,
    ingest,
    prior,
    reconstruct,
    serve,
)
from cli.common import version

app = typer.Typer(
    name="echo4d",
    help="Echo4D: 4D left-ventricle reconstruction from 2D apical echocardiography.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("version", help="Print the Echo4D, cohort-generator and checkpoint versions.")(version)
for module in (cohort, prior, reconstruct, ingest, serve):
    module.register(app)
app.add_typer(bench.bench_app, name="bench")
# The bench modules register their commands on bench.bench_app when imported.
_BENCH_MODULES = (bench_api, bench_prior, bench_quality, bench_recon, bench_segment)
