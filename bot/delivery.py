"""The delivery outbox: what the bot owes each learner, kept in PostgreSQL until every part has been sent.

`record` writes a delivery row holding the feedback event, with the answer's outcome (scores, or the rejection
and its refund), in one transaction; after that the Kafka offset may be committed, because the row is the debt.
`deliver` claims a row for a while (`claimed_until`, renewed as parts go out), sends the parts not yet sent, and
counts each one, so a send that fails half-way, or a bot killed mid-send, resumes from the first part not sent
(a part whose send succeeded just before a crash goes out twice: at least once, never lost).

Telegram errors are sorted, as the Bot API documents them:
- 429 with `retry_after`: waited out, in line when it fits the delivery's budget (`delivery_wait_s`), otherwise
  by the retry sweep at that time;
- network errors, 5xx and 401 (the bot's token refused: the operator's to fix): retried with backoff, the same way;
- anything else (the learner blocked the bot, the chat is gone, a bad request): final.
A delivery that is final, or still failing after `delivery_give_up_s`, is marked failed and the answer refunded
once; the learner can still read the feedback with /last. The answer is `delivered` only after its last part.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from html import escape
from typing import Any

import psycopg
import structlog
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.utils.i18n import I18n
from psycopg.types.json import Jsonb

from bot import keyboards, repo
from bot.formatting import feedback_messages
from bot.services import Services
from speech_coach.contracts.events import FeedbackResult, ResultStatus, decode_as
from speech_coach.logging import get_logger
from speech_coach.rejections import rejection_text
from speech_coach.text.tokenize import tokenize

log = get_logger("bot.delivery")

# Function words left out of "most-used words": the chart is about the learner's vocabulary.
_STOP = (
    "a an the and or but if so to of in on at by for with from as is are was were be been being am i you "
    "he she it we they me him her us them my your his its our their this that these those there here do "
    "does did have has had not no yes can will would should could just very also than then what which who "
    "when where why how i'm it's don't that's i've i'd"
)
STOP_WORDS = frozenset(_STOP.split())
# 401 is the operator's: the bot's token was revoked or replaced. No learner's delivery is at fault, so none is given
# up for it before `delivery_give_up_s`; the fixed token sends what waited.
TRANSIENT = (TelegramRetryAfter, TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError)


def word_counts(transcript: str) -> tuple[int, dict[str, int]]:
    words = tokenize(transcript).words
    return len(words), dict(Counter(w for w in words if w not in STOP_WORDS and len(w) > 1).most_common(50))


def backoff_s(attempt: int) -> float:
    """Seconds before retry `attempt` (1, 2, ...): 2, 4, 8, ... capped at five minutes."""
    return float(min(300, 2**attempt))


def render(result: FeedbackResult, title: str, language: str) -> list[str]:
    """The messages of one feedback, in the learner's language (the caller sets the gettext locale)."""
    if result.status is ResultStatus.OK:
        return feedback_messages(result, title)
    # Rendered again from the code, in the learner's language now, from the catalog the job used.
    return [escape(rejection_text(result.rejection_reason, language), quote=False)]


class Outbox:
    def __init__(self, services: Services, bot: Bot, i18n: I18n) -> None:
        self.services, self.bot, self.i18n = services, bot, i18n
        # Renewed as each part goes out; a send that hangs past it may be repeated by another process (a part
        # twice), never lost.
        self.claim_s = services.settings.bot.delivery_lease_s

    # --- record ------------------------------------------------------------------------------------------

    async def record(self, result: FeedbackResult) -> uuid.UUID | None:
        """Write the delivery, and the answer's outcome, once; the answer id when something is still to send."""
        metrics = self.services.metrics
        try:
            answer_id = uuid.UUID(result.answer_id)
        except ValueError:
            log.warning("feedback for a foreign answer id", answer_id=result.answer_id[:64])
            return None
        async with self.services.db.tx() as cur:
            answer = await repo.answer_row(cur, answer_id)
            if answer is None:  # erased learner, or another deployment's answer
                metrics.feedback.labels("unknown_answer").inc()
                return None
            await cur.execute(
                "INSERT INTO deliveries (answer_id, event_id, status, result) VALUES (%s, %s, 'sending', %s) "
                "ON CONFLICT (answer_id) DO NOTHING RETURNING answer_id",
                (answer_id, result.event_id, Jsonb(result.model_dump(mode="json"))),
            )
            if await cur.fetchone() is not None:
                await self._record_outcome(cur, answer, result)
                return answer_id
            await cur.execute("SELECT status FROM deliveries WHERE answer_id = %s", (answer_id,))
            row = await cur.fetchone()
        if row is not None and row["status"] == "sending":
            return answer_id  # recorded before (a crash, a rebalance): still owed
        metrics.feedback.labels("duplicate").inc()
        log.info("duplicate feedback skipped", answer_id=result.answer_id)
        return None

    async def _record_outcome(self, cur: repo.Cursor, answer: dict[str, Any], result: FeedbackResult) -> None:
        if result.status is ResultStatus.OK:
            count, counts = word_counts(result.transcript)
            m = result.metrics
            await cur.execute(
                # Feedback proves the publication, also where the bot died (or PostgreSQL went) before booking it.
                "UPDATE answers SET status = 'scored', feedback_at = now(), published_at = coalesce(published_at, "
                "now()), overall_score = %s, "
                "words_per_minute = %s, pause_count = %s, lexical_diversity = %s, word_count = %s, "
                "word_counts = %s WHERE id = %s",
                (result.overall_score, m.words_per_minute if m else None, m.pause_count if m else None,
                 m.lexical_diversity if m else None, count, Jsonb(counts), answer["id"]),
            )  # fmt: skip
        else:
            # A rejected answer costs nothing: the credit taken when it arrived comes back, once.
            await cur.execute(
                "UPDATE answers SET status = 'rejected', feedback_at = now(), "
                "published_at = coalesce(published_at, now()) WHERE id = %s",
                (answer["id"],),
            )
            await repo.add_credits(cur, answer["learner_id"], 1, "refund", str(answer["id"]))

    # --- deliver -----------------------------------------------------------------------------------------

    async def deliver(self, answer_id: uuid.UUID) -> str:
        """Send what is still owed for this answer: "sent", "retry" (left to the sweep), "failed" (refunded),
        or "busy" (another process holds it, or nothing is owed)."""
        async with self.services.db.tx() as cur:
            await cur.execute(
                "UPDATE deliveries SET claimed_until = now() + make_interval(secs => %s) WHERE answer_id = %s "
                "AND status = 'sending' AND (claimed_until IS NULL OR claimed_until < now()) "
                "RETURNING result, parts_sent, attempts, extract(epoch FROM now() - created_at)::float8 AS age_s",
                (self.claim_s, answer_id),
            )
            claim = await cur.fetchone()
            if claim is None:
                return "busy"
            answer = await repo.answer_row(cur, answer_id)
            learner = await repo.learner_by_id(cur, answer["learner_id"]) if answer else None
            question = await repo.question(cur, answer["question_id"]) if answer else None
        if answer is None or learner is None or question is None:  # erased since: no one to send to
            return "busy"
        with structlog.contextvars.bound_contextvars(learner=learner.pseudonym, learner_id=str(learner.id)):
            try:
                result = decode_as(FeedbackResult, json.dumps(claim["result"]))
                with self.i18n.context(), self.i18n.use_locale(learner.language):
                    texts = render(result, question.title, learner.language)
                    markup = keyboards.after_feedback(repo.KIND_OF_TASK[question.task_type], question.id)
            except Exception as exc:  # a row this bot cannot read or render: no retry helps
                # Named by type and reason only: a validation message can quote the transcript.
                return await self._fail(answer, exc, f"{type(exc).__name__}: {getattr(exc, 'reason', '')}")
            return await self._send(result, texts, markup, answer, learner, claim)

    async def _send(
        self, result: FeedbackResult, texts: list[str], markup: Any, answer: dict[str, Any], learner: repo.Learner,
        claim: dict[str, Any],
    ) -> str:  # fmt: skip
        answer_id, cfg = answer["id"], self.services.settings.bot
        deadline = time.monotonic() + cfg.delivery_wait_s
        part, tries = claim["parts_sent"], 0
        if part:
            log.info("delivery resumed", answer_id=str(answer_id), from_part=part + 1, parts=len(texts))
        while part < len(texts):
            try:
                await self.bot.send_message(
                    learner.chat_id, texts[part], reply_markup=markup if part == len(texts) - 1 else None
                )
            except TRANSIENT as exc:
                tries += 1
                wait = float(exc.retry_after) if isinstance(exc, TelegramRetryAfter) else backoff_s(tries) / 2
                if isinstance(exc, TelegramUnauthorizedError):
                    log.error("Telegram refused the bot's token (401): check SC_BOT__TOKEN", part=part + 1)
                log.warning("sending feedback failed, will retry", part=part + 1, error=_error(exc), wait_s=wait)
                if time.monotonic() + wait <= deadline:
                    await asyncio.sleep(wait)
                    continue
                if claim["age_s"] + cfg.delivery_wait_s < cfg.delivery_give_up_s:
                    await self._defer(answer_id, claim["attempts"] + 1, wait, exc)
                    return "retry"
                return await self._fail(answer, exc)
            except TelegramAPIError as exc:  # the learner blocked the bot, the chat is gone: retrying won't help
                return await self._fail(answer, exc)
            part += 1
            async with self.services.db.tx() as cur:  # counted at once: a resume starts after it
                await cur.execute(
                    "UPDATE deliveries SET parts_sent = %s, claimed_until = now() + make_interval(secs => %s) "
                    "WHERE answer_id = %s",
                    (part, self.claim_s, answer_id),
                )
        async with self.services.db.tx() as cur:
            await cur.execute(
                "UPDATE deliveries SET status = 'sent', message_count = %s, delivered_at = now(), "
                "claimed_until = NULL, last_error = NULL WHERE answer_id = %s",
                (len(texts), answer_id),
            )
            await cur.execute(
                "UPDATE answers SET status = 'delivered' WHERE id = %s AND status = 'scored'", (answer_id,)
            )
        metrics = self.services.metrics
        metrics.feedback.labels(result.status.value).inc()
        metrics.last_feedback.set(time.time())
        if (received := answer.get("received_at")) is not None:
            metrics.feedback_latency.observe(max(0.0, time.time() - received.timestamp()))
        log.info("feedback delivered", answer_id=str(answer_id), status=result.status.value, messages=len(texts))
        return "sent"

    async def _defer(self, answer_id: uuid.UUID, attempts: int, wait_s: float, exc: Exception) -> None:
        async with self.services.db.tx() as cur:
            await cur.execute(
                "UPDATE deliveries SET attempts = %s, next_attempt_at = now() + make_interval(secs => %s), "
                "claimed_until = NULL, last_error = %s WHERE answer_id = %s",
                (attempts, max(wait_s, backoff_s(attempts)), _error(exc), answer_id),
            )
        self.services.metrics.feedback.labels("retry").inc()

    async def _fail(self, answer: dict[str, Any], exc: Exception, error: str | None = None) -> str:
        error = error or _error(exc)
        async with self.services.db.tx() as cur:
            await cur.execute(
                "UPDATE deliveries SET status = 'failed', claimed_until = NULL, last_error = %s WHERE answer_id = %s",
                (error, answer["id"]),
            )
            await cur.execute(
                "UPDATE answers SET status = 'undelivered' WHERE id = %s AND status = 'scored'", (answer["id"],)
            )
            # Feedback that never arrived costs nothing. Once per answer: a rejected one was refunded already.
            await repo.add_credits(cur, answer["learner_id"], 1, "refund", str(answer["id"]))
        self.services.metrics.feedback.labels("send_failed").inc()
        log.error("feedback not delivered, answer refunded", answer_id=str(answer["id"]), error=error)
        return "failed"

    # --- the retry sweep ---------------------------------------------------------------------------------

    async def deliver_due(self, limit: int = 50) -> int:
        """Deliveries whose retry time came, or whose claim lapsed (a bot killed mid-send): sent by this process."""
        async with self.services.db.tx() as cur:
            await cur.execute(
                "SELECT answer_id FROM deliveries WHERE status = 'sending' AND next_attempt_at <= now() "
                "AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY next_attempt_at LIMIT %s",
                (limit,),
            )
            due = [r["answer_id"] for r in await cur.fetchall()]
        sent = 0
        for answer_id in due:
            with structlog.contextvars.bound_contextvars(answer_id=str(answer_id)):
                try:
                    sent += await self.deliver(answer_id) == "sent"
                except psycopg.Error:
                    raise  # the database itself: the sweep's caller backs off
                except Exception as exc:  # one delivery's fault must not hold up the others
                    log.error("delivery attempt failed, left to a later sweep", error=type(exc).__name__)
        return sent


async def last_feedback(services: Services, learner_id: uuid.UUID) -> tuple[FeedbackResult, repo.Question] | None:
    """The newest feedback kept for the learner, delivered or not (/last)."""
    async with services.db.tx() as cur:
        await cur.execute(
            "SELECT d.result, a.question_id FROM deliveries d JOIN answers a ON a.id = d.answer_id "
            "WHERE a.learner_id = %s AND d.result IS NOT NULL ORDER BY d.created_at DESC LIMIT 1",
            (learner_id,),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        question = await repo.question(cur, row["question_id"])
    assert question is not None
    return decode_as(FeedbackResult, json.dumps(row["result"])), question


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
