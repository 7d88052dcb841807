"""Each bad-configuration case fails with one line naming the part, the cause, its log and the fix."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import free_port_block, make_settings
from tests.test_stack_lifecycle import cli, processes_under

pytestmark = pytest.mark.stack


def error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{stderr}"
    return lines[0]


def test_port_in_use(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "state")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.postgres.port))
        squatter.listen()
        result = cli(settings, "stack", "up")
    assert result.returncode == 1
    line = error_line(result.stderr)
    assert line.startswith("error postgres:")
    assert f"port {settings.postgres.port} on 127.0.0.1 is already in use" in line
    assert "postgres.log" in line and "SC_POSTGRES__PORT" in line
    assert processes_under(settings.state_dir) == []


def test_unreachable_external_broker(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "state")
    closed = free_port_block(1)
    result = cli(settings, "stack", "up", extra_env={"SC_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}"})
    assert result.returncode == 1
    line = error_line(result.stderr)
    assert line.startswith("error kafka:")
    assert f"external server 127.0.0.1:{closed} is unreachable" in line
    assert "SC_KAFKA__BOOTSTRAP_SERVERS" in line
    assert processes_under(settings.state_dir) == []


def test_unreachable_external_postgres(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "state")
    closed = free_port_block(1)
    url = f"postgresql://app:pw@127.0.0.1:{closed}/speech_coach"
    result = cli(settings, "stack", "up", extra_env={"SC_POSTGRES__URL": url})
    assert result.returncode == 1
    line = error_line(result.stderr)
    assert line.startswith("error postgres:") and "unreachable" in line and "SC_POSTGRES__URL" in line


def test_no_usable_java(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "state")
    fake = tmp_path / "not-a-jdk"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "java").write_text("#!/bin/sh\nexit 1\n")
    (fake / "bin" / "java").chmod(0o755)
    result = cli(settings, "stack", "up", extra_env={"SC_JAVA__HOME": str(fake)})
    assert result.returncode == 1
    line = error_line(result.stderr)
    assert line.startswith("error java:")
    assert f"SC_JAVA__HOME={fake} has no working bin/java" in line
    assert "fix:" in line and "JDK >= 17" in line
    assert processes_under(settings.state_dir) == []


def test_server_that_fails_to_start_is_reported_and_nothing_is_left(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "state")
    # A data directory from an unknown PostgreSQL version: initdb is skipped and the server refuses it.
    pgdata = settings.state_dir / "postgres" / "data"
    pgdata.mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("7\n")
    result = cli(settings, "stack", "up")
    assert result.returncode == 1
    line = error_line(result.stderr)
    assert line.startswith("error postgres:")
    assert "exited during start-up" in line
    assert str(settings.state_dir / "logs" / "postgres.log") in line
    # What that `up` had started (S3, the broker, ClickHouse) was stopped again.
    assert processes_under(settings.state_dir) == []
    assert "stopped" in cli(settings, "stack", "status").stdout


def test_an_interrupted_up_stops_at_once_and_leaves_nothing(tmp_path: Path) -> None:
    """Ctrl-C while parts start side by side: the parts still waiting give up, what had started is stopped."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import settings_env

    settings = make_settings(tmp_path / "state")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")} | settings_env(settings)
    proc = subprocess.Popen(
        [sys.executable, "-m", "control.cli", "stack", "up"], env=env | {"COLUMNS": "200"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (settings.state_dir / "run" / "s3.json").exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # S3 is starting; the broker waits for it
    os.kill(proc.pid, signal.SIGINT)
    interrupted = time.monotonic()
    _, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 130, stderr
    assert error_line(stderr).startswith("interrupted:") and "Traceback" not in stderr
    assert time.monotonic() - interrupted < 45  # SeaweedFS' graceful stop, not a start timeout
    assert processes_under(settings.state_dir) == []


def test_definitions_that_fail_to_load_fail_the_code_server_at_once(tmp_path: Path) -> None:
    """A broken code location is reported with its error as soon as the code server logs it, not after a timeout."""
    import time

    from control.stack import StackError
    from control.stack.dagster import DagsterCodeServerPart

    class BrokenLocation(DagsterCodeServerPart):
        def command(self) -> list[str]:
            return [*super().command()[:3], "-m", "no_such_module_anywhere", *super().command()[5:]]

    part = BrokenLocation(make_settings(tmp_path / "state"))
    part.spawn()
    began = time.monotonic()
    try:
        with pytest.raises(StackError) as failed:
            part.wait_healthy(120)
    finally:
        part.stop()
    assert "failed to load" in str(failed.value) and "no_such_module_anywhere" in str(failed.value)
    assert time.monotonic() - began < 90
