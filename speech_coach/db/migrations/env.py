"""Alembic environment: online migrations only, URL from speech_coach.db.migrate."""

from alembic import context
from sqlalchemy import create_engine

url = context.config.get_main_option("sqlalchemy.url")
assert url, "speech_coach.db.migrate sets sqlalchemy.url"
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
