"""Alembic, driven from the settings rather than an alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from speech_coach.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def sqlalchemy_url(settings: Settings) -> str:
    # SQLAlchemy 2.0 maps plain postgresql:// to psycopg2; the platform uses psycopg 3.
    url = settings.postgres_url
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def _config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(settings).replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(_config(settings), revision)


def current_revision(settings: Settings) -> str | None:
    engine = create_engine(sqlalchemy_url(settings))
    try:
        with engine.connect() as conn:
            rev: str | None = MigrationContext.configure(conn).get_current_revision()
            return rev
    finally:
        engine.dispose()
