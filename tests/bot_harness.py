"""Run the real bot (bot.app.BotApp) on a thread against the Telegram stand-in and the test stack's servers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from typing import Any

import psycopg
from confluent_kafka import Consumer, Producer

from bot.app import BotApp
from control.harness.telegram import TOKEN, TelegramStandIn, onboard

__all__ = ["ADMIN_ID", "TOKEN", "RunningBot", "bot_settings", "onboard", "publish", "read_topic", "rows"]
from control.stack.isolated import free_port_block
from speech_coach.contracts.events import Event, encode
from speech_coach.contracts.topics import Topic
from speech_coach.kafka import consumer_config, producer_config, topic_name
from speech_coach.settings import Settings

ADMIN_ID = 4242


def bot_settings(base: Settings, pg_url: str, bucket: str, tg: TelegramStandIn, **bot: Any) -> Settings:
    """The stack's servers with a private database, bucket and topic prefix, and the bot pointed at the stand-in."""
    ports = free_port_block(2)
    bot_values: dict[str, Any] = {
        "token": TOKEN, "api_base_url": tg.url, "admin_ids": [ADMIN_ID], "health_port": ports,
        "webhook_port": ports + 1, "feedback_group_id": f"bot-{uuid.uuid4().hex[:8]}",
    } | bot  # fmt: skip
    return base.model_copy(
        update={
            "postgres": base.postgres.model_copy(update={"url": pg_url}),
            "kafka": base.kafka.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:8]}."}),
            "s3": base.s3.model_copy(update={"audio_bucket": bucket}),
            "bot": base.bot.model_validate(base.bot.model_dump() | bot_values),
        }
    )


class RunningBot:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app: BotApp | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="bot", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self.loop = asyncio.get_running_loop()
            self.app = BotApp(self.settings)
            original = self.app.prepare

            async def prepare() -> None:
                await original()
                self._ready.set()

            self.app.prepare = prepare  # type: ignore[method-assign]
            await self.app.run()

        try:
            asyncio.run(run())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    def start(self, timeout: float = 90) -> RunningBot:
        self._thread.start()
        deadline = time.monotonic() + timeout
        assert self._ready.wait(timeout), "bot did not start"
        if self.error:
            raise self.error
        if self.settings.bot.webhook_url:
            # `prepare` is done before the webhook listener opens: a test posting at once would be refused.
            address = (self.settings.bot.webhook_host, self.settings.bot.webhook_port)
            while True:
                try:
                    socket.create_connection(address, timeout=1).close()
                    break
                except OSError:
                    assert self.error is None and time.monotonic() < deadline, f"webhook not listening: {self.error}"
                    time.sleep(0.1)
        return self

    def call(self, coro: Any, timeout: float = 30) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self, timeout: float = 60) -> None:
        if self.app is not None and self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.app.request_stop)
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "bot did not stop"
        if self.error:
            raise self.error


def publish(settings: Settings, event: Event) -> None:
    producer = Producer(producer_config(settings))
    producer.produce(topic_name(settings, event.TOPIC), key=event.key(), value=encode(event))
    assert producer.flush(15) == 0


def read_topic(settings: Settings, topic: Topic, count: int, timeout: float = 20, settle: float = 0.0) -> list[bytes]:
    """Read `count` records from the start of the topic (then wait `settle` s more to catch extras)."""
    consumer = Consumer(consumer_config(settings, f"test-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic_name(settings, topic)])
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(out) < count:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                out.append(msg.value())
        end = time.monotonic() + settle
        while time.monotonic() < end:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                out.append(msg.value())
    finally:
        consumer.close()
    return out


def rows(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.postgres_url) as conn:
        return conn.execute(sql, params).fetchall()
