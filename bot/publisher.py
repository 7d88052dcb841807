"""Publishing events to Kafka with confirmed delivery: a publish succeeds only when the broker acknowledged it.

librdkafka reports deliveries from `poll()`; a thread polls while the bot runs and resolves the asyncio
future of each message. A failed delivery is retried a few times; the caller decides what a final failure
means for the learner.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from confluent_kafka import KafkaError, Producer

from speech_coach.contracts.events import Event, encode
from speech_coach.kafka import producer_config, topic_name
from speech_coach.logging import get_logger
from speech_coach.observability.tracing import kafka_headers
from speech_coach.settings import Settings

log = get_logger("bot.publisher")


class PublishError(RuntimeError):
    pass


class Publisher:
    def __init__(self, settings: Settings, metrics: Any, *, message_timeout_ms: int = 10000) -> None:
        self.settings = settings
        self.metrics = metrics
        self.producer = Producer(producer_config(settings, **{"message.timeout.ms": message_timeout_ms}))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="kafka-delivery-reports", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.producer.poll(0.1)

    async def publish_once(self, event: Event) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def report(err: KafkaError | None, _msg: Any) -> None:
            def settle() -> None:
                if done.done():
                    return
                if err is None:
                    done.set_result(None)
                else:
                    done.set_exception(PublishError(str(err)))

            loop.call_soon_threadsafe(settle)

        self.producer.produce(
            topic_name(self.settings, event.TOPIC), key=event.key(), value=encode(event), on_delivery=report,
            headers=kafka_headers(),  # W3C trace context of the current span (none when not traced)
        )  # fmt: skip
        await done

    async def publish(self, event: Event, attempts: int = 3) -> None:
        """Publish with retries; raises PublishError after the last failed attempt."""
        for attempt in range(1, attempts + 1):
            try:
                await self.publish_once(event)
                self.metrics.publish_attempts.labels("ok").inc()
                return
            except (PublishError, BufferError) as exc:
                self.metrics.publish_attempts.labels("failed").inc()
                log.warning("publish failed", event_type=event.EVENT_TYPE, attempt=attempt, error=str(exc))
                if attempt == attempts:
                    raise PublishError(str(exc)) from exc
                await asyncio.sleep(0.5 * attempt)

    def close(self, timeout: float = 15.0) -> int:
        """Flush what is queued (delivery reports included) and stop; returns the messages still undelivered."""
        left = int(self.producer.flush(timeout))
        self._stop.set()
        self._thread.join(timeout=2)
        if left:
            log.error("producer closed with undelivered messages", undelivered=left)
        return left

    def ping(self, timeout: float = 3.0) -> str | None:
        try:
            self.producer.list_topics(timeout=timeout)
        except Exception as exc:  # any client error means "not reachable"
            return str(exc)
        return None
