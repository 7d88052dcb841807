"""Versioned ClickHouse migrations, applied idempotently.

Files are `migrations/NNNN_name.sql`. Applied versions are recorded in `schema_migrations` with the file's
checksum: a second run applies nothing, and an already-applied file that was edited is refused, since its
change would never reach databases that ran the old version (write a new migration instead).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_driver import Client

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        # Statements end with ";" at the end of a line; comments are stripped first.
        text = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [stmt.strip() for stmt in re.split(r";\s*$", text, flags=re.M) if stmt.strip()]


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


def applied(client: Client) -> dict[int, str]:
    client.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32, name String, checksum String, "
        "applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY version"
    )
    return dict(client.execute("SELECT version, checksum FROM schema_migrations"))


def migrate(client: Client, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply the pending migrations in order; returns those applied now."""
    done = applied(client)
    ran = []
    for migration in discover(directory):
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise MigrationError(
                    f"{migration.path.name} was changed after it was applied; add a new migration instead"
                )
            continue
        for statement in migration.statements():
            client.execute(statement)
        client.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES",
            [(migration.version, migration.name, migration.checksum)],
        )
        ran.append(migration)
    return ran
