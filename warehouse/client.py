"""ClickHouse access for the warehouse (clickhouse-driver, native protocol). Every value is a bound parameter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clickhouse_driver import Client

from speech_coach.settings import Settings
from speech_coach.stack.clickhouse import clickhouse_client
from speech_coach.stack.clickhouse import identifier as _identifier


def connect(settings: Settings, database: str | None = None) -> Client:
    """A client on the warehouse database (created if missing, as the stack does for the local server)."""
    name = database or settings.clickhouse_database
    admin = clickhouse_client(settings.clickhouse_url, database="default")
    admin.execute(f"CREATE DATABASE IF NOT EXISTS `{_identifier(name)}`")
    admin.disconnect()
    client: Client = clickhouse_client(settings.clickhouse_url, database=name)
    return client


def insert(client: Client, table: str, rows: Sequence[dict[str, Any]], *, dedup_token: str | None = None) -> int:
    """Insert dict rows into `table`; `dedup_token` makes a re-sent batch a no-op on the server."""
    if not rows:
        return 0
    columns = list(rows[0])
    settings: dict[str, Any] = {}
    if dedup_token:
        settings["insert_deduplication_token"] = dedup_token
    client.execute(
        f"INSERT INTO `{_identifier(table)}` ({', '.join(f'`{_identifier(c)}`' for c in columns)}) VALUES",
        [tuple(row[c] for c in columns) for row in rows],
        settings=settings,
    )
    return len(rows)
