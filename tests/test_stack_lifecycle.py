"""`speech-coach stack up | status | down` as an operator runs it, on a private stack."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import psycopg
import pytest

from speech_coach.kafka import consumer_config, producer_config
from speech_coach.s3 import ensure_bucket, s3_client
from speech_coach.settings import Settings
from tests.conftest import make_settings, settings_env
from warehouse.client import clickhouse_client

pytestmark = pytest.mark.stack


def cli(settings: Settings, *args: str, extra_env: dict[str, str] | None = None, timeout: float = 120):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    env |= settings_env(settings) | (extra_env or {}) | {"COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "control.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def processes_under(state_dir: Path) -> list[psutil.Process]:
    """Every live process whose command line or working directory points into the state dir."""
    marker = str(state_dir)
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            text = " ".join(proc.info["cmdline"] or []) + " " + (proc.info["cwd"] or "")
        except psutil.Error:
            continue
        if marker in text:
            found.append(proc)
    return found


def test_up_status_down_up_keeps_data(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "state")
    started = time.monotonic()
    up = cli(settings, "stack", "up")
    assert up.returncode == 0, up.stderr
    status = cli(settings, "stack", "status")
    elapsed = time.monotonic() - started
    assert status.returncode == 0, status.stdout + status.stderr
    for part in ("postgres", "kafka", "clickhouse", "s3"):
        line = next(ln for ln in status.stdout.splitlines() if f" {part} " in ln)
        assert "healthy" in line, status.stdout
    assert elapsed < 30, f"stack took {elapsed:.1f} s to become healthy"

    again = cli(settings, "stack", "up")
    assert again.returncode == 0 and "already up" in again.stdout

    # Write to every server, and leave Kafka messages unconsumed.
    from confluent_kafka import Producer

    topic = f"durable-{uuid.uuid4().hex[:8]}"
    producer = Producer(producer_config(settings))
    for i in range(25):
        producer.produce(topic, key=b"k", value=f"msg-{i}".encode())
    assert producer.flush(15) == 0
    with psycopg.connect(settings.postgres_url) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('postgres survives')")
    ch = clickhouse_client(settings.clickhouse_url)
    ch.execute("CREATE TABLE kept (v String) ENGINE = MergeTree ORDER BY v")
    ch.execute("INSERT INTO kept VALUES", [("clickhouse survives",)])
    s3 = s3_client(settings)
    ensure_bucket(s3, "kept")
    s3.put_object(Bucket="kept", Key="k.txt", Body=b"s3 survives")

    down = cli(settings, "stack", "down")
    assert down.returncode == 0, down.stderr
    assert processes_under(settings.state_dir) == []
    assert "stopped" in cli(settings, "stack", "status").stdout

    assert cli(settings, "stack", "up").returncode == 0
    try:
        with psycopg.connect(settings.postgres_url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("postgres survives",)]
        assert clickhouse_client(settings.clickhouse_url).execute("SELECT v FROM kept") == [("clickhouse survives",)]
        assert s3_client(settings).get_object(Bucket="kept", Key="k.txt")["Body"].read() == b"s3 survives"

        from confluent_kafka import Consumer

        consumer = Consumer(consumer_config(settings, group_id="after-restart"))
        consumer.subscribe([topic])
        got: list[bytes] = []
        deadline = time.monotonic() + 45
        while len(got) < 25 and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg.value())
        consumer.close()
        assert got == [f"msg-{i}".encode() for i in range(25)]
    finally:
        cli(settings, "stack", "down")
    assert processes_under(settings.state_dir) == []


def test_a_private_stack_wants_no_port_of_the_default_platform(tmp_path: Path) -> None:
    """`make test` runs while `make run`'s platform is up: a test stack must not want any port that platform holds."""
    from control.stack import Stack

    def ports(stack: Stack) -> dict[str, list[int]]:
        parts = [*stack.servers, *stack.stoppable_platform_parts]
        return {p.name: p.ports() for p in parts} | {"bot webhook": [stack.settings.bot.webhook_port]}

    platform = ports(Stack(Settings(_env_file=None), platform=True))  # type: ignore[call-arg]
    taken = {port: name for name, used in platform.items() for port in used}
    private = ports(Stack(make_settings(tmp_path / "state"), platform=True))
    clashes = {name: [p for p in used if p in taken] for name, used in private.items() if set(used) & set(taken)}
    assert clashes == {}, f"a private stack wants ports the default platform holds: {clashes}"
    mine = [p for used in private.values() for p in used]
    assert len(mine) == len(set(mine)), f"a private stack uses one port twice: {private}"


def test_stack_logs_help_lists_every_part(tmp_path: Path) -> None:
    """`stack logs --help` names every part the stack can run, read from the parts, not from a typed list."""
    from control.stack import Stack

    settings = make_settings(tmp_path / "state")
    stack = Stack(settings, platform=True)
    names = [p.name for p in [*stack.servers, *stack.stoppable_platform_parts]]
    assert {"s3", "kafka", "postgres", "clickhouse", "ingest", "dagster-ui", "dagster-daemon", "answer-job",
            "metrics-job", "bot"} <= set(names)  # fmt: skip
    result = cli(settings, "stack", "logs", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(ln.strip(" │") for ln in result.stdout.splitlines())  # rejoin the wrapped help text
    listed = text.partition("one of ")[2].partition(";")[0]
    assert [n.strip() for n in listed.split(",")] == names, text
