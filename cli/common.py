"""Helpers shared by the CLI modules: version output and turning typed errors into exit codes."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer

from models import __version__
from models.errors import Echo4DError


def version() -> None:
    """Print the package version (and, when available, the cohort generator version)."""
    typer.echo(f"echo4d {__version__}")
    with contextlib.suppress(ImportError):
        from models.cohort.version import GENERATOR_VERSION

        typer.echo(f"cohort generator {GENERATOR_VERSION}")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn an :class:`Echo4DError` into one clear line on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except Echo4DError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
