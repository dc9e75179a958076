"""Helpers shared by the CLI modules: version output and turning typed errors into exit codes."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import typer
from pydantic import ValidationError

from models import __version__
from models.errors import Echo4DError


def version() -> None:
    """Print the package version (and, when available, the cohort generator version)."""
    typer.echo(f"echo4d {__version__}")
    with contextlib.suppress(ImportError):
        from models.cohort.version import GENERATOR_VERSION

        typer.echo(f"cohort generator {GENERATOR_VERSION}")


def validation_text(exc: ValidationError) -> str:
    """One line naming each refused setting by its environment variable (``ECHO4D_DEVICE: …``) and why; the
    refused values are not repeated (a setting may hold a secret)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        name = (f"ECHO4D_{loc.upper()}" if loc else "settings") if exc.title == "Settings" else (loc or exc.title)
        parts.append(f"{name}: {err['msg']}")
    return ("invalid settings: " if exc.title == "Settings" else f"invalid {exc.title}: ") + "; ".join(parts)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn an :class:`Echo4DError`, or settings the environment gets wrong, into one clear line on stderr and exit
    code 2 (no traceback)."""
    try:
        yield
    except Echo4DError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ValidationError as exc:
        typer.echo(f"error: {validation_text(exc)}", err=True)
        sys.exit(2)
