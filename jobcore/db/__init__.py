"""The job table and friends: SQLAlchemy 2 models, engine/session factory, Alembic migrations, repository."""
