"""Run dbt against the warehouse configured in settings (the same ClickHouse the platform uses)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from speech_coach.package_data import data_dir
from speech_coach.settings import Settings

# Package data: the repository's dbt/ (through the symlink warehouse/dbt_project), or the wheel's copy.
PROJECT_DIR = data_dir("warehouse", "dbt_project")
# The manifest Dagster builds its assets from (dagster-dbt reads it when the definitions load).
MANIFEST_DIR = PROJECT_DIR / "target" / "dagster"
# What dbt writes itself; newer files there do not make the manifest stale.
_GENERATED = {"target", "logs", "dbt_packages"}


def dbt_env(settings: Settings, database: str | None = None) -> dict[str, str]:
    url = urlsplit(settings.clickhouse_url)
    return {
        "DBT_CLICKHOUSE_HOST": url.hostname or settings.stack.host,
        "DBT_CLICKHOUSE_PORT": str(url.port or 9000),
        "DBT_CLICKHOUSE_USER": unquote(url.username or "default"),
        "DBT_CLICKHOUSE_PASSWORD": unquote(url.password or ""),
        "DBT_CLICKHOUSE_SCHEMA": database or settings.clickhouse_database,
        "DBT_CLICKHOUSE_SECURE": "True" if url.scheme == "clickhouses" else "False",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_VERSION_CHECK": "false",
    }


def run_dbt(
    settings: Settings, args: list[str], *, database: str | None = None, target_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`dbt <args>` in a subprocess (dbt keeps global state; one process per invocation keeps runs apart)."""
    env = os.environ | dbt_env(settings, database)
    extra = ["--target-path", str(target_dir)] if target_dir else []
    return subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), *args, "--project-dir", str(PROJECT_DIR),
         "--profiles-dir", str(PROJECT_DIR), *extra],
        env=env, cwd=PROJECT_DIR, capture_output=True, text=True, check=False,
    )  # fmt: skip


def ensure_manifest(settings: Settings | None = None) -> Path:
    """`dbt parse` into MANIFEST_DIR when the manifest is missing or older than the project's files (no database
    needed); `make install` runs it once so the first `make run` does not. Processes loading the definitions at
    the same time (code server, tests, the simulator) wait for one parse instead of writing the same files."""
    manifest = MANIFEST_DIR / "manifest.json"

    def stale() -> bool:
        sources = [
            p for p in PROJECT_DIR.rglob("*")
            if p.suffix in {".sql", ".yml"} and _GENERATED.isdisjoint(p.relative_to(PROJECT_DIR).parts[:1])
        ]  # fmt: skip
        return not manifest.exists() or manifest.stat().st_mtime < max(p.stat().st_mtime for p in sources)

    if not stale():
        return manifest
    MANIFEST_DIR.mkdir(parents=True, exist_ok=True)
    with (MANIFEST_DIR / ".parse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stale():  # another process may have parsed while this one waited
            result = run_dbt(settings or Settings(), ["parse"], target_dir=MANIFEST_DIR)
            if result.returncode != 0:
                raise RuntimeError(f"dbt parse failed:\n{result.stdout[-3000:]}")
    return manifest
