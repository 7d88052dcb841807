"""Shared fixtures: the real local servers, started once per session through the stack code.

Each test gets its own topics, databases and buckets, so tests never see each other's data.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speech_coach.settings import (
    ClickHouseSettings,
    KafkaSettings,
    PostgresSettings,
    S3Settings,
    Settings,
    StackSettings,
)
from speech_coach.stack import Stack


def pytest_configure(config: pytest.Config) -> None:
    # The suite runs its own servers; an operator's SC_* environment must not redirect it elsewhere.
    for key in [k for k in os.environ if k.startswith("SC_")]:
        del os.environ[key]


def free_port_block(size: int) -> int:
    """First port of `size` consecutive free ports on loopback."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            start = probe.getsockname()[1]
        if start + size >= 65535:
            continue
        socks = []
        try:
            for port in range(start, start + size):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no block of free ports")


def make_settings(state_dir: Path, **overrides: Any) -> Settings:
    """Settings for a private stack: its own state dir and free ports."""
    base = free_port_block(13)
    values: dict[str, Any] = {
        "environment": "test",
        "stack": StackSettings(state_dir=state_dir, start_timeout_s=60),
        "postgres": PostgresSettings(port=base),
        "kafka": KafkaSettings(port=base + 1),
        "clickhouse": ClickHouseSettings(tcp_port=base + 2, http_port=base + 3),
        "s3": S3Settings(port=base + 4, internal_port_base=base + 5),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as environment variables, for driving the CLI in a subprocess."""
    return {
        "SC_STACK__STATE_DIR": str(settings.stack.state_dir),
        "SC_STACK__START_TIMEOUT_S": str(settings.stack.start_timeout_s),
        "SC_POSTGRES__PORT": str(settings.postgres.port),
        "SC_KAFKA__PORT": str(settings.kafka.port),
        "SC_CLICKHOUSE__TCP_PORT": str(settings.clickhouse.tcp_port),
        "SC_CLICKHOUSE__HTTP_PORT": str(settings.clickhouse.http_port),
        "SC_S3__PORT": str(settings.s3.port),
        "SC_S3__INTERNAL_PORT_BASE": str(settings.s3.internal_port_base),
    }


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("stack") / "state")


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    stack = Stack(settings)
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kafka_topic(stack: Stack) -> Iterator[str]:
    from confluent_kafka.admin import AdminClient, NewTopic

    from speech_coach.kafka import client_config

    name = unique("test-topic").replace("_", "-")
    admin = AdminClient(client_config(stack.settings))
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result(15)
    yield name
    admin.delete_topics([name])[name].result(15)


@pytest.fixture
def pg_database(stack: Stack) -> Iterator[str]:
    """URL of a fresh PostgreSQL database, dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = unique("test")
    admin_url = stack.settings.postgres_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def ch_database(stack: Stack) -> Iterator[str]:
    """Name of a fresh ClickHouse database, dropped afterwards."""
    from speech_coach.stack.clickhouse import clickhouse_client

    name = unique("test")
    client = clickhouse_client(stack.settings.clickhouse_url, database="default")
    client.execute(f"CREATE DATABASE `{name}`")
    yield name
    client.execute(f"DROP DATABASE IF EXISTS `{name}` SYNC")


@pytest.fixture
def s3_bucket(stack: Stack) -> Iterator[str]:
    from speech_coach.s3 import ensure_bucket, s3_client

    name = unique("test").replace("_", "-")
    client = s3_client(stack.settings)
    ensure_bucket(client, name)
    yield name
    for obj in client.list_objects_v2(Bucket=name).get("Contents", []):
        client.delete_object(Bucket=name, Key=obj["Key"])
    client.delete_bucket(Bucket=name)
