"""ClickHouse for the local stack: the chdb-core engine in server mode (see clickhouse_server.py)."""

from __future__ import annotations

import logging
import sys
from typing import Any
from urllib.parse import urlsplit

from speech_coach.stack.base import ManagedPart, StackError, describe_exc, tcp_reachable

# The driver logs a full traceback for every refused connection; health checks expect refusals.
logging.getLogger("clickhouse_driver.connection").setLevel(logging.CRITICAL)


def identifier(name: str) -> str:
    """`name` if it is a plain identifier (letters, digits, underscores), to quote with backticks in SQL; names
    cannot be bound parameters, so anything else is refused rather than escaped."""
    if not name or not name.replace("_", "").isalnum() or not name.isascii():
        raise ValueError(f"not a plain identifier: {name!r}")
    return name


def clickhouse_client(url: str, *, connect_timeout: float = 5, database: str | None = None) -> Any:
    from clickhouse_driver import Client

    client = Client.from_url(url)
    client.connection.connect_timeout = connect_timeout
    if database is not None:
        client.connection.database = database
    return client


class ClickHousePart(ManagedPart):
    name = "clickhouse"
    external_setting = "SC_CLICKHOUSE__URL"

    @property
    def external(self) -> bool:
        return bool(self.settings.clickhouse.url)

    @property
    def address(self) -> str:
        return self.settings.clickhouse_url

    def ports(self) -> list[int]:
        return [self.settings.clickhouse.tcp_port, self.settings.clickhouse.http_port]

    def port_setting_hint(self) -> str:
        return "SC_CLICKHOUSE__TCP_PORT / SC_CLICKHOUSE__HTTP_PORT"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "speech_coach.stack.clickhouse_server",
            "--data-dir", str(self.data_dir),
            "--host", self.host,
            "--tcp-port", str(self.settings.clickhouse.tcp_port),
            "--http-port", str(self.settings.clickhouse.http_port),
        ]  # fmt: skip

    def _client(self) -> Any:
        # The server-level check must not depend on the database existing yet.
        return clickhouse_client(self.address, connect_timeout=3, database="default" if not self.external else None)

    def check(self) -> str | None:
        from clickhouse_driver.errors import Error as ClickHouseError

        parts = urlsplit(self.address)
        if reason := tcp_reachable(parts.hostname or self.host, parts.port or 9000):
            return reason
        try:
            self._client().execute("SELECT 1")
        except (ClickHouseError, OSError, EOFError) as exc:
            return describe_exc(exc)
        return None

    def after_start(self) -> None:
        from clickhouse_driver.errors import Error as ClickHouseError

        database = self.settings.clickhouse_database
        try:
            self._client().execute(f"CREATE DATABASE IF NOT EXISTS `{identifier(database)}`")
        except (ClickHouseError, OSError, EOFError) as exc:
            raise StackError(
                self.name,
                f"could not create database {database}: {describe_exc(exc)}",
                self.log_file,
                "read the log",
            ) from exc
