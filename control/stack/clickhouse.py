"""ClickHouse for the local stack: the chdb-core engine in server mode (see clickhouse_server.py)."""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import urlsplit

from control.stack.base import ManagedPart, describe_exc, tcp_reachable
from warehouse.client import clickhouse_client, identifier


class ClickHousePart(ManagedPart):
    name = "clickhouse"
    external_setting = "SC_CLICKHOUSE__URL"
    port_settings = ("SC_CLICKHOUSE__TCP_PORT", "SC_CLICKHOUSE__HTTP_PORT")

    @property
    def address(self) -> str:
        return self.settings.clickhouse_url

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "control.stack.clickhouse_server",
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
            raise self.setup_failed(f"create database {database}", exc) from exc
