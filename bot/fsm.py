"""aiogram's FSM storage in PostgreSQL: one row per conversation key, shared by every bot replica and kept across
restarts (the in-memory storage lost a half-finished broadcast or onboarding, and replicas never saw each other's).
A row whose state and data are both cleared is deleted, so a finished conversation leaves nothing behind."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from psycopg.types.json import Jsonb

from bot.db import Database


def _key(key: StorageKey) -> str:
    return ":".join(str(part) for part in (key.bot_id, key.chat_id, key.user_id, key.thread_id,
                                           key.business_connection_id, key.destiny))  # fmt: skip


class PostgresStorage(BaseStorage):
    def __init__(self, db: Database) -> None:
        self.db = db

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        async with self.db.tx() as cur:
            await cur.execute(
                "INSERT INTO fsm_states (key, chat_id, state) VALUES (%s, %s, %s) ON CONFLICT (key) DO UPDATE "
                "SET state = EXCLUDED.state, updated_at = now()",
                (_key(key), key.chat_id, value),
            )
            await self._drop_if_empty(cur, key)

    async def get_state(self, key: StorageKey) -> str | None:
        async with self.db.tx() as cur:
            await cur.execute("SELECT state FROM fsm_states WHERE key = %s", (_key(key),))
            row = await cur.fetchone()
        return row["state"] if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        async with self.db.tx() as cur:
            await cur.execute(
                "INSERT INTO fsm_states (key, chat_id, data) VALUES (%s, %s, %s) ON CONFLICT (key) DO UPDATE "
                "SET data = EXCLUDED.data, updated_at = now()",
                (_key(key), key.chat_id, Jsonb(dict(data))),
            )
            await self._drop_if_empty(cur, key)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self.db.tx() as cur:
            await cur.execute("SELECT data FROM fsm_states WHERE key = %s", (_key(key),))
            row = await cur.fetchone()
        return dict(row["data"]) if row else {}

    async def close(self) -> None:
        pass

    @staticmethod
    async def _drop_if_empty(cur: Any, key: StorageKey) -> None:
        await cur.execute(
            "DELETE FROM fsm_states WHERE key = %s AND state IS NULL AND data = '{}'::jsonb", (_key(key),)
        )
