"""Run dbt against the warehouse configured in settings (the same ClickHouse the platform uses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from speech_coach.package_data import data_dir
from speech_coach.settings import Settings

# Package data: the repository's dbt/ (through the symlink warehouse/dbt_project), or the wheel's copy.
PROJECT_DIR = data_dir("warehouse", "dbt_project")


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
