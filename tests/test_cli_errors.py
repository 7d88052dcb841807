"""A command whose server does not answer ends with one line naming the server and the fix, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from control.stack.isolated import free_port_block


def run_cli(tmp_path: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    # A narrow terminal: the error must stay one line even where rich would wrap it.
    extra = {"SC_STACK__STATE_DIR": str(tmp_path / "state"), "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "control.cli", *args], env=clean | extra | env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr[-3000:]}"
    assert result.returncode == 1, (result.returncode, result.stdout[-2000:])
    return lines[0]


@pytest.mark.parametrize("command", [["db", "upgrade"], ["warehouse", "migrate"], ["warehouse", "dbt"]])
@pytest.mark.parametrize("external", [True, False], ids=["external-server", "local-stack"])
def test_an_unreachable_server_gives_one_line_and_a_fix(tmp_path: Path, command: list[str], external: bool) -> None:
    closed = free_port_block(1)  # free now, so nothing listens there
    server, setting = ("postgres", "SC_POSTGRES__URL") if command[0] == "db" else ("clickhouse", "SC_CLICKHOUSE__URL")
    if external:
        url = f"postgresql://app:s3cret@127.0.0.1:{closed}/speech_coach" if server == "postgres" else (
            f"clickhouse://default:s3cret@127.0.0.1:{closed}/speech_coach"
        )  # fmt: skip
        env = {setting: url}
    else:  # the local stack's server, not started
        env = {"SC_POSTGRES__PORT": str(closed)} if server == "postgres" else {"SC_CLICKHOUSE__TCP_PORT": str(closed)}
    line = one_error_line(run_cli(tmp_path, *command, env=env))
    assert line.startswith(f"error {server}: cannot connect to 127.0.0.1:{closed} (")
    assert "s3cret" not in line  # the address, never the credentials
    fix = line.partition(" - fix: ")[2]
    assert (setting in fix) if external else ("make run" in fix and "speech-coach stack up" in fix), line


def test_dbt_commands_that_need_no_warehouse_run_without_one(tmp_path: Path) -> None:
    closed = free_port_block(1)
    result = run_cli(tmp_path, "warehouse", "dbt", "deps", env={"SC_CLICKHOUSE__TCP_PORT": str(closed)})
    assert result.returncode == 0 and "Running with dbt" in result.stdout, result.stdout + result.stderr
