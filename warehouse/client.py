"""ClickHouse access for the warehouse (clickhouse-driver, native protocol). Every value is a bound parameter."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver.errors import NetworkError, SocketTimeoutError

from speech_coach.settings import Settings
from speech_coach.unreachable import ServerUnreachable

# The driver logs a full traceback for every refused connection; health checks expect refusals.
logging.getLogger("clickhouse_driver.connection").setLevel(logging.CRITICAL)


def identifier(name: str) -> str:
    """`name` if it is a plain identifier (letters, digits, underscores), to quote with backticks in SQL; names
    cannot be bound parameters, so anything else is refused rather than escaped."""
    if not name or not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def clickhouse_client(url: str, *, connect_timeout: float = 5, database: str | None = None) -> Client:
    client = Client.from_url(url)
    client.connection.connect_timeout = connect_timeout
    if database is not None:
        client.connection.database = database
    return client


def ping(settings: Settings) -> None:
    """Return once the warehouse server answers; raise ServerUnreachable (one line with the fix) if not."""
    client = clickhouse_client(settings.clickhouse_url, database="default")
    try:
        client.execute("SELECT 1")
    except (NetworkError, SocketTimeoutError, EOFError, OSError) as exc:
        cause = getattr(exc, "message", "") or str(exc) or type(exc).__name__
        raise ServerUnreachable(
            "clickhouse", settings.clickhouse_url, "SC_CLICKHOUSE__URL", cause, external=bool(settings.clickhouse.url)
        ) from exc
    finally:
        client.disconnect()


def connect(settings: Settings, database: str | None = None) -> Client:
    """A client on the warehouse database (created if missing, as the stack does for the local server)."""
    name = database or settings.clickhouse_database
    admin = clickhouse_client(settings.clickhouse_url, database="default")
    admin.execute(f"CREATE DATABASE IF NOT EXISTS `{identifier(name)}`")
    admin.disconnect()
    return clickhouse_client(settings.clickhouse_url, database=name)


def insert(client: Client, table: str, rows: Sequence[dict[str, Any]], *, dedup_token: str | None = None) -> int:
    """Insert dict rows into `table`; `dedup_token` makes a re-sent batch a no-op on the server."""
    if not rows:
        return 0
    columns = list(rows[0])
    settings: dict[str, Any] = {}
    if dedup_token:
        settings["insert_deduplication_token"] = dedup_token
    client.execute(
        f"INSERT INTO `{identifier(table)}` ({', '.join(f'`{identifier(c)}`' for c in columns)}) VALUES",
        [tuple(row[c] for c in columns) for row in rows],
        settings=settings,
    )
    return len(rows)
