"""Alembic environment: always run programmatically with a connection from ``run_migrations``."""

from __future__ import annotations

from alembic import context

from jobcore.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through jobcore.db.engine.run_migrations (or `echo4d admin migrate`)")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
