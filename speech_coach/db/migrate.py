"""Alembic, driven from the settings rather than an alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from speech_coach.settings import Settings
from speech_coach.unreachable import ServerUnreachable

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


def ping(settings: Settings, timeout_s: int = 5) -> None:
    """Return once the operational database answers; raise ServerUnreachable (one line with the fix) if not."""
    import psycopg

    try:
        with psycopg.connect(settings.postgres_url, connect_timeout=timeout_s) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        # libpq says "connection to server at "h", port p failed: <why>"; the why is what the operator needs.
        cause = str(exc).splitlines()[0].rpartition("failed: ")[2] if str(exc) else type(exc).__name__
        raise ServerUnreachable(
            "postgres", settings.postgres_url, "SC_POSTGRES__URL", cause, external=bool(settings.postgres.url)
        ) from exc


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
