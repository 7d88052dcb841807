"""The feedback consumer: FeedbackResult events from Kafka into the delivery outbox, then out to the learner.

Each event is recorded (`Outbox.record`: the delivery row with the answer's outcome, one transaction) before its
offset is committed, and sent after; what the send leaves unfinished, the outbox's retry sweep finishes. Recording
is idempotent per answer, so a redelivered event (a restart, a rebalance, a commit that failed) changes nothing.

The loop never dies of one event: an event that breaks its contract, or that PostgreSQL refuses to store, is a
dead letter; a database error, a failed dead-letter publish or a commit error rewinds to
the event and tries again with backoff, while `/readyz` shows the failure (`Heartbeat`).

Delivery is a span (`bot.deliver_feedback`) in the answer's trace: its parent is the answer job's publish span,
named by the event's `traceparent` (or the Kafka headers). Log lines carry the answer id and the learner's
pseudonym.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import psycopg
import structlog
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from bot.delivery import Outbox
from bot.health import Heartbeat
from bot.services import Services
from speech_coach.contracts.events import ContractError, DeadLetter, FeedbackResult, decode_as
from speech_coach.contracts.topics import Topic
from speech_coach.kafka import consumer_config, topic_name
from speech_coach.logging import get_logger
from speech_coach.observability.tracing import context_from_headers, context_from_traceparent, tracer

log = get_logger("bot.feedback")
_tracer = tracer("bot.feedback")


class FeedbackConsumer:
    def __init__(self, services: Services, outbox: Outbox, heartbeat: Heartbeat) -> None:
        self.services, self.outbox, self.heartbeat = services, outbox, heartbeat
        settings = services.settings
        self.consumer = Consumer(consumer_config(settings, settings.bot.feedback_group_id))
        self.consumer.subscribe([topic_name(settings, Topic.FEEDBACK)])
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        failures = 0
        try:
            while not self._stopping.is_set():
                msg: Message | None = await asyncio.to_thread(self.consumer.poll, 0.5)
                if msg is None or msg.error():
                    if msg is not None:
                        log.warning("feedback consumer error", error=str(msg.error()))
                    self.heartbeat.beat(self.heartbeat.error if failures else None)
                    continue
                try:
                    owed = await self.accept(msg)
                    await asyncio.to_thread(self.consumer.commit, message=msg, asynchronous=False)
                except Exception as exc:  # whatever it was, the event is read again
                    failures += 1
                    self.heartbeat.beat(f"{type(exc).__name__}: {exc}"[:200])
                    self.services.metrics.feedback.labels("consumer_error").inc()
                    log.exception("feedback event not handled, retrying", failures=failures)
                    await asyncio.to_thread(self._rewind, msg)
                    with contextlib.suppress(TimeoutError):  # backoff, cut short by a stop
                        await asyncio.wait_for(self._stopping.wait(), min(30.0, 0.5 * 2 ** min(failures, 6)))
                    continue
                failures = 0
                self.heartbeat.beat()
                if owed is not None:
                    await self._deliver(*owed)
        finally:
            self.heartbeat.stopped = "the feedback consumer ended"
            await asyncio.to_thread(self.consumer.close)

    def stop(self) -> None:
        self._stopping.set()

    def _rewind(self, msg: Message) -> None:
        """Back to the event that failed, so the next poll returns it again."""
        try:
            self.consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
        except KafkaException as exc:  # no longer ours after a rebalance: its new owner reads it from the commit
            log.warning("feedback event not rewound", error=str(exc)[:200])

    async def accept(self, msg: Message) -> tuple[uuid.UUID, Context] | None:
        """Record the event's delivery: the answer id (and the trace to deliver in) when feedback is owed.
        Raises when the event must be read again."""
        value = msg.value() or b""
        try:
            result = decode_as(FeedbackResult, value)
        except ContractError as exc:
            self.services.metrics.feedback.labels("invalid").inc()
            log.error("invalid feedback event", reason=exc.reason, detail=str(exc)[:300])
            await self._dead_letter(msg, exc.reason, str(exc)[:4000])
            return None
        # The event's own context first: it names the job's publish span even where headers were dropped.
        parent = context_from_traceparent(result.traceparent, context_from_headers(msg.headers()))
        try:
            answer_id = await self.outbox.record(result)
        except psycopg.errors.DataError as exc:
            # A value the contract allows and PostgreSQL cannot store (NaN, a NUL character, a number out of
            # range): read again, it fails again, and every event behind it on the partition would wait for ever.
            self.services.metrics.feedback.labels("invalid").inc()
            log.error("feedback event PostgreSQL cannot store", sqlstate=exc.sqlstate)
            detail = f"PostgreSQL refused to store it (SQLSTATE {exc.sqlstate})"
            await self._dead_letter(msg, "store.refused", detail, answer_id=result.answer_id)
            return None
        return None if answer_id is None else (answer_id, parent)

    async def _dead_letter(self, msg: Message, reason: str, detail: str, answer_id: str | None = None) -> None:
        key = msg.key()
        await self.services.publisher.publish(
            DeadLetter.of_record(
                msg.value() or b"",
                source_topic=msg.topic() or "",
                source_partition=msg.partition(),
                source_offset=msg.offset(),
                source_key=key.decode(errors="replace") if key else None,
                stage="bot.feedback",
                reason=reason,
                detail=detail,
                answer_id=answer_id,
            )
        )

    async def _deliver(self, answer_id: uuid.UUID, parent: Context) -> None:
        with (
            _tracer.start_as_current_span(
                "bot.deliver_feedback", context=parent, kind=SpanKind.CONSUMER,
                attributes={"speech_coach.answer_id": str(answer_id)},
            ),
            structlog.contextvars.bound_contextvars(answer_id=str(answer_id)),
        ):  # fmt: skip
            try:
                await self.outbox.deliver(answer_id)
            except Exception:  # the row is recorded: the retry sweep sends it
                log.exception("feedback delivery interrupted; the retry sweep finishes it")
