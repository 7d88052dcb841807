"""The operational PostgreSQL database as the bot uses it: every unit of work is one transaction on a connection
from a small pool (`SC_BOT__DB_POOL_SIZE`), so a learner action does not pay a connection set-up (TLS and auth in
production) per statement group, and a burst cannot open more connections than the pool allows.

Connections are checked as they are taken (a PostgreSQL restart leaves broken ones behind, which are replaced), and
a caller waits at most `SC_BOT__DB_POOL_TIMEOUT_S` for one, then gets an OperationalError like a refused connect.
The pool belongs to the event loop that first used it. Without a pool size (scripts, tests) each transaction opens
its own connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from speech_coach.settings import Settings


class Database:
    def __init__(self, settings: Settings, pooled: bool = False) -> None:
        self.url = settings.postgres_url
        self.pool_size = settings.bot.db_pool_size if pooled else 0
        self.pool_timeout_s = settings.bot.db_pool_timeout_s
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[dict]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _pool_here(self) -> AsyncConnectionPool[psycopg.AsyncConnection[dict]]:
        loop = asyncio.get_running_loop()
        if self._pool is None or self._loop is not loop:
            self._pool = AsyncConnectionPool(
                self.url, min_size=1, max_size=self.pool_size, open=False, timeout=self.pool_timeout_s,
                kwargs={"row_factory": dict_row}, check=AsyncConnectionPool.check_connection,
                name="speech-coach-bot",
            )  # fmt: skip
            self._loop = loop
            await self._pool.open(wait=False)  # PostgreSQL may still be starting: connections come as it does
        return self._pool

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[psycopg.AsyncCursor[dict]]:
        """A cursor in one transaction: committed when the block ends, rolled back on an exception."""
        if not self.pool_size:
            async with (
                await psycopg.AsyncConnection.connect(self.url, row_factory=dict_row) as conn,
                conn.transaction(),
                conn.cursor() as cur,
            ):
                yield cur
            return
        pool = await self._pool_here()
        async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield cur

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def ping(self) -> str | None:
        try:
            async with self.tx() as cur:
                await cur.execute("SELECT 1")
        except psycopg.Error as exc:
            return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None
