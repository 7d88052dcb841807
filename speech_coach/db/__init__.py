"""The operational PostgreSQL database, shared by the bot and Dagster: Alembic migrations and data access.

`upgrade(settings)` applies the migrations in `migrations/versions` (idempotent; also `speech-coach db
upgrade`). The bot's own tables arrive with the bot; the question bank is loaded here by Dagster.
"""

from speech_coach.db.migrate import current_revision, ping, sqlalchemy_url, upgrade
from speech_coach.db.questions import sync_questions

__all__ = ["current_revision", "ping", "sqlalchemy_url", "sync_questions", "upgrade"]
