"""``echo4d bench ...``: benchmarks (accuracy, speed, api). Figures go to docs/results.md."""

from __future__ import annotations

import typer

bench_app = typer.Typer(help="Benchmarks: accuracy and speed of reconstruction, API load.", no_args_is_help=True)
