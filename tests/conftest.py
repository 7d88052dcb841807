"""Shared fixtures: the real local servers, started once per session through the stack code.

Each test gets its own topics, databases and buckets, so tests never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from control.stack import Stack
from control.stack.isolated import free_port_block, isolated_settings, settings_env
from speech_coach.settings import Settings

if TYPE_CHECKING:  # the bot's harness imports aiogram; only the bot's tests pay for that
    from control.harness.telegram import TelegramStandIn
    from tests.bot_harness import RunningBot

make_settings = isolated_settings
__all__ = ["free_port_block", "make_settings", "settings_env"]


def pytest_configure(config: pytest.Config) -> None:
    # The suite runs its own servers; an operator's SC_* environment must not redirect it elsewhere.
    for key in [k for k in os.environ if k.startswith("SC_")]:
        del os.environ[key]
    # Explicitly a test environment: the public default pseudonym key is refused anywhere else.
    os.environ["SC_ENVIRONMENT"] = "test"


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


def using_servers_of(stack: Stack, state_dir, **overrides):  # type: ignore[no-untyped-def]
    """Settings for a second stack whose four servers are the given stack's, as external servers."""
    from speech_coach.settings import ClickHouseSettings, KafkaSettings, PostgresSettings, S3Settings

    s = stack.settings
    servers = {
        "postgres": PostgresSettings(url=s.postgres_url),
        "kafka": KafkaSettings(bootstrap_servers=s.kafka_bootstrap),
        "clickhouse": ClickHouseSettings(url=s.clickhouse_url),
        "s3": S3Settings(endpoint_url=s.s3_endpoint),
    }
    return isolated_settings(state_dir, **(servers | overrides))


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
    from warehouse.client import clickhouse_client

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


# The bot's tests: a Telegram stand-in, the bot's settings against it, and the bot running in this process.


@pytest.fixture
def tg() -> Iterator[TelegramStandIn]:
    from control.harness.telegram import TelegramStandIn
    from tests.bot_harness import TOKEN

    stand_in = TelegramStandIn(TOKEN).start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def bot_env(stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn) -> Settings:
    from tests.bot_harness import bot_settings

    return bot_settings(stack.settings, pg_database, s3_bucket, tg)


@pytest.fixture
def running_bot(bot_env: Settings) -> Iterator[RunningBot]:
    from tests.bot_harness import RunningBot

    bot = RunningBot(bot_env).start()
    yield bot
    bot.stop()
