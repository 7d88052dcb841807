"""The operational PostgreSQL database as the bot uses it: one short async connection per unit of work.

The bot's traffic is a few statements per learner action, so a connection per transaction (loopback or a
pooler such as PgBouncer in production) keeps it simple; every multi-statement change is one transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg.rows import dict_row

from speech_coach.settings import Settings


class Database:
    def __init__(self, settings: Settings) -> None:
        self.url = settings.postgres_url

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[psycopg.AsyncCursor[dict]]:
        """A cursor in one transaction: committed when the block ends, rolled back on an exception."""
        async with (
            await psycopg.AsyncConnection.connect(self.url, row_factory=dict_row) as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            yield cur

    async def ping(self) -> str | None:
        try:
            async with self.tx() as cur:
                await cur.execute("SELECT 1")
        except psycopg.Error as exc:
            return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None
