"""The operational PostgreSQL database, shared by the bot and Dagster: Alembic migrations and data access.

`upgrade(settings)` applies the migrations in `migrations/versions` (idempotent; also `python -m speech_coach.db
upgrade` and `speech-coach db upgrade`). The question bank is loaded by Dagster with `speech_coach.db.questions`,
which is not imported here: the migrations job's image has no question bank parser (the ingest set).
"""

from speech_coach.db.migrate import current_revision, ping, sqlalchemy_url, upgrade

__all__ = ["current_revision", "ping", "sqlalchemy_url", "upgrade"]
