"""Feedback delivery: consume FeedbackResult events and send each learner their feedback exactly once.

A delivery row per answer makes redelivered events (a consumer restart, a replayed partition) harmless: the
row is written with the answer's new state, and the refund of a rejected answer, in one transaction before
any message goes out; the offset is committed only after the messages were sent. A crash between the two
resends the same feedback once more rather than losing it.

Delivery is a span (`bot.deliver_feedback`) in the answer's trace: its parent is the answer job's publish span,
named by the event's `traceparent` (or the Kafka headers). Log lines carry the answer id and the learner's
pseudonym.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from html import escape
from typing import Any

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.utils.i18n import I18n
from confluent_kafka import Consumer, Message
from opentelemetry.trace import SpanKind
from psycopg.types.json import Jsonb

from bot import keyboards, repo
from bot.formatting import feedback_messages
from bot.services import Services
from speech_coach.contracts.events import ContractError, DeadLetter, FeedbackResult, ResultStatus, decode_as
from speech_coach.contracts.topics import Topic
from speech_coach.kafka import consumer_config, topic_name
from speech_coach.logging import get_logger
from speech_coach.observability.tracing import context_from_headers, context_from_traceparent, tracer
from speech_coach.rejections import rejection_text
from speech_coach.text.tokenize import tokenize

log = get_logger("bot.feedback")
_tracer = tracer("bot.feedback")

# Function words left out of "most-used words": the chart is about the learner's vocabulary.
_STOP = (
    "a an the and or but if so to of in on at by for with from as is are was were be been being am i you "
    "he she it we they me him her us them my your his its our their this that these those there here do "
    "does did have has had not no yes can will would should could just very also than then what which who "
    "when where why how i'm it's don't that's i've i'd"
)
STOP_WORDS = frozenset(_STOP.split())


def word_counts(transcript: str) -> tuple[int, dict[str, int]]:
    words = tokenize(transcript).words
    return len(words), dict(Counter(w for w in words if w not in STOP_WORDS and len(w) > 1).most_common(50))


class FeedbackConsumer:
    def __init__(self, services: Services, bot: Bot, i18n: I18n) -> None:
        self.services, self.bot, self.i18n = services, bot, i18n
        settings = services.settings
        self.consumer = Consumer(consumer_config(settings, settings.bot.feedback_group_id))
        self.consumer.subscribe([topic_name(settings, Topic.FEEDBACK)])
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                msg: Message | None = await asyncio.to_thread(self.consumer.poll, 0.5)
                if msg is None:
                    continue
                if msg.error():
                    log.warning("feedback consumer error", error=str(msg.error()))
                    continue
                await self.handle(msg)
                await asyncio.to_thread(self.consumer.commit, message=msg, asynchronous=False)
        finally:
            await asyncio.to_thread(self.consumer.close)

    def stop(self) -> None:
        self._stopping.set()

    async def handle(self, msg: Message) -> None:
        value = msg.value() or b""
        try:
            result = decode_as(FeedbackResult, value)
        except ContractError as exc:
            self.services.metrics.feedback.labels("invalid").inc()
            log.error("invalid feedback event", reason=exc.reason, detail=str(exc)[:300])
            key = msg.key()
            await self.services.publisher.publish(
                DeadLetter.of_record(
                    value,
                    source_topic=msg.topic() or "",
                    source_partition=msg.partition(),
                    source_offset=msg.offset(),
                    source_key=key.decode(errors="replace") if key else None,
                    stage="bot.feedback",
                    reason=exc.reason,
                    detail=str(exc)[:4000],
                )
            )
            return
        # The event's own context first: it names the job's publish span even where headers were dropped.
        parent = context_from_traceparent(result.traceparent, context_from_headers(msg.headers()))
        with (
            _tracer.start_as_current_span(
                "bot.deliver_feedback", context=parent, kind=SpanKind.CONSUMER,
                attributes={"speech_coach.answer_id": result.answer_id, "speech_coach.status": result.status.value},
            ),
            structlog.contextvars.bound_contextvars(answer_id=result.answer_id[:64]),
        ):  # fmt: skip
            await self.deliver(result)

    async def deliver(self, result: FeedbackResult) -> bool:
        """Send the feedback unless it was already sent; returns True when messages went out."""
        metrics = self.services.metrics
        try:
            answer_id = uuid.UUID(result.answer_id)
        except ValueError:
            log.warning("feedback for a foreign answer id", answer_id=result.answer_id[:64])
            return False
        async with self.services.db.tx() as cur:
            answer = await repo.answer_row(cur, answer_id)
            if answer is None:  # erased learner, or another deployment's answer
                metrics.feedback.labels("unknown_answer").inc()
                return False
            await cur.execute(
                "INSERT INTO deliveries (answer_id, event_id, status) VALUES (%s, %s, 'sending') "
                "ON CONFLICT (answer_id) DO UPDATE SET event_id = deliveries.event_id "
                "RETURNING status, (xmax = 0) AS inserted",
                (answer_id, result.event_id),
            )
            row = await cur.fetchone()
            assert row is not None
            if row["status"] == "sent":
                metrics.feedback.labels("duplicate").inc()
                log.info("duplicate feedback skipped", answer_id=result.answer_id)
                return False
            if row["inserted"]:
                await self._record(cur, answer, result)
            learner = await repo.learner_by_id(cur, answer["learner_id"])
            question = await repo.question(cur, answer["question_id"])
        assert learner is not None and question is not None
        # From here on every log line names the learner by pseudonym, as the handlers' lines do.
        with structlog.contextvars.bound_contextvars(learner=learner.pseudonym, learner_id=str(learner.id)):
            return await self._deliver(result, answer, learner, question, answer_id)

    async def _deliver(
        self, result: FeedbackResult, answer: dict[str, Any], learner: repo.Learner, question: repo.Question,
        answer_id: uuid.UUID,
    ) -> bool:  # fmt: skip
        metrics = self.services.metrics
        with self.i18n.context(), self.i18n.use_locale(learner.language):
            if result.status is ResultStatus.OK:
                texts = feedback_messages(result, question.title)
            else:
                # Rendered again from the code, in the learner's language now, from the catalog the job used.
                texts = [escape(rejection_text(result.rejection_reason, learner.language), quote=False)]
            markup = keyboards.after_feedback(repo.KIND_OF_TASK[question.task_type], question.id)
            try:
                await self._send(learner.chat_id, texts, markup)
            except TelegramAPIError as exc:  # e.g. the learner blocked the bot: retrying would not help
                metrics.feedback.labels("send_failed").inc()
                log.error("feedback not delivered", answer_id=result.answer_id, error=str(exc)[:200])
                async with self.services.db.tx() as cur:
                    await cur.execute("UPDATE deliveries SET status = 'failed' WHERE answer_id = %s", (answer_id,))
                return False
        async with self.services.db.tx() as cur:
            await cur.execute(
                "UPDATE deliveries SET status = 'sent', message_count = %s, delivered_at = now() WHERE answer_id = %s",
                (len(texts), answer_id),
            )
        metrics.feedback.labels(result.status.value).inc()
        metrics.last_feedback.set(time.time())
        if (received := answer.get("received_at")) is not None:
            metrics.feedback_latency.observe(max(0.0, time.time() - received.timestamp()))
        log.info("feedback delivered", answer_id=result.answer_id, status=result.status.value, messages=len(texts))
        return True

    async def _record(self, cur: repo.Cursor, answer: dict[str, Any], result: FeedbackResult) -> None:
        if result.status is ResultStatus.OK:
            count, counts = word_counts(result.transcript)
            m = result.metrics
            await cur.execute(
                "UPDATE answers SET status = 'delivered', feedback_at = now(), overall_score = %s, "
                "words_per_minute = %s, pause_count = %s, lexical_diversity = %s, word_count = %s, "
                "word_counts = %s WHERE id = %s",
                (result.overall_score, m.words_per_minute if m else None, m.pause_count if m else None,
                 m.lexical_diversity if m else None, count, Jsonb(counts), answer["id"]),
            )  # fmt: skip
        else:
            # A rejected answer costs nothing: the credit taken when it arrived comes back, once.
            await cur.execute(
                "UPDATE answers SET status = 'rejected', feedback_at = now() WHERE id = %s", (answer["id"],)
            )
            await repo.add_credits(cur, answer["learner_id"], 1, "refund", str(answer["id"]))

    async def _send(self, chat_id: int, texts: list[str], markup: Any) -> None:
        for i, text in enumerate(texts):
            last = i == len(texts) - 1
            for attempt in range(3):
                try:
                    await self.bot.send_message(chat_id, text, reply_markup=markup if last else None)
                    break
                except TelegramAPIError as exc:
                    log.warning("sending feedback failed", attempt=attempt + 1, error=str(exc)[:200])
                    if attempt == 2:
                        raise
                    await asyncio.sleep(1 + attempt)
