"""Voice answers: accept voice messages and audio files, refuse everything else with a clear message.

An accepted answer is recorded and its credit taken in one transaction, then the original is stored in S3
under its content-addressed key and a RawVoiceAnswer goes to Kafka. If storing or publishing finally fails,
the learner is told and the credit comes back. A bot process that dies in between (killed, OOM, a node lost)
leaves the answer `accepted` with its credit taken and Telegram will not send the update again: once the
answer's publish lease has run out, any bot process takes it over (`recover_stranded`), downloads the recording
again by its file id and publishes it, or refunds it. The bot never decodes or analyses the audio: the duration
is the one Telegram reports.

Each accepted answer starts a trace (`bot.receive_answer`); its context goes to Kafka in the message headers and
in the event's `traceparent`, so the answer job's stages and the delivery of the feedback join the same trace.
"""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from typing import Any

import structlog
from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Message, ReplyParameters
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from opentelemetry.trace import SpanKind

from bot import erasure, keyboards, repo
from bot.routers.practice import gate
from bot.services import Services
from speech_coach.contracts.events import AudioObject, RawVoiceAnswer, TelegramRef
from speech_coach.logging import get_logger
from speech_coach.observability.tracing import current_traceparent, tracer

router = Router(name="answers")
log = get_logger("bot.answers")
_tracer = tracer("bot.answers")


async def refuse(message: Message, services: Services, reason: str, text: str) -> None:
    services.metrics.refusals.labels(reason).inc()
    log.info("message refused", reason=reason)
    await message.reply(text)


class _TooBig(Exception):
    pass


class _Bounded(io.BytesIO):
    """The download's destination: refuses the chunk that would take it past the limit, which ends the stream."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, data: Any, /) -> int:  # a bytes-like chunk
        if self.tell() + memoryview(data).nbytes > self.limit:
            raise _TooBig
        return super().write(data)


@router.message(F.voice)
async def voice(message: Message, learner: repo.Learner | None, services: Services, bot: Bot, update_id: int) -> None:
    v = message.voice
    assert v is not None
    with _tracer.start_as_current_span("bot.receive_answer", kind=SpanKind.SERVER, attributes={"kind": "voice"}):
        await accept(message, learner, services, bot, update_id, v.file_id, v.file_unique_id,
                     v.mime_type or "audio/ogg", v.duration, v.file_size)  # fmt: skip


@router.message(F.audio)
async def audio(message: Message, learner: repo.Learner | None, services: Services, bot: Bot, update_id: int) -> None:
    a = message.audio
    assert a is not None
    with _tracer.start_as_current_span("bot.receive_answer", kind=SpanKind.SERVER, attributes={"kind": "audio"}):
        await accept(message, learner, services, bot, update_id, a.file_id, a.file_unique_id,
                     a.mime_type or "audio/mpeg", a.duration, a.file_size)  # fmt: skip


@router.message(F.document.mime_type.startswith("audio/"))
async def audio_document(message: Message, services: Services) -> None:
    # Sent "as a file", an audio has no duration from Telegram, and the bot does not decode audio to find it.
    await refuse(message, services, "audio_without_duration",
                 _("I cannot tell how long this recording is. Please send it as a voice message (hold the "
                   "microphone button) or as a music/audio file, not as a document."))  # fmt: skip


@router.message(F.video | F.video_note | F.animation)
async def video(message: Message, services: Services) -> None:
    await refuse(message, services, "video", _("Videos are not accepted. Please answer with a voice message."))


@router.message(F.sticker)
async def sticker(message: Message, services: Services) -> None:
    await refuse(message, services, "sticker", _("Stickers cannot be assessed. Please answer with a voice message."))


@router.message(F.text & ~F.text.startswith("/"))
async def text(message: Message, services: Services) -> None:
    await refuse(message, services, "text",
                 _("Written answers are not accepted: this is speaking practice. Please record a voice "
                   "message."))  # fmt: skip


@router.message(F.photo | F.document | F.location | F.contact | F.poll)
async def other(message: Message, services: Services) -> None:
    await refuse(message, services, "unsupported", _("Please answer with a voice message."))


async def accept(
    message: Message, learner: repo.Learner | None, services: Services, bot: Bot, update_id: int,
    file_id: str, file_unique_id: str, mime_type: str, duration: int, file_size: int | None,
) -> None:  # fmt: skip
    if not (learner := await gate(message, learner, services)):
        return
    cfg = services.settings.bot
    if learner.current_question_id is None or learner.current_question_sent_at is None:
        await refuse(
            message, services, "no_question", _("Choose a question first, then answer it with a voice message.")
        )
        await message.answer(_("Choose what to practise:"), reply_markup=keyboards.menu())
        return
    async with services.db.tx() as cur:
        q = await repo.question(cur, learner.current_question_id)
    assert q is not None
    limit_mb = cfg.max_file_bytes / 1024 / 1024
    if file_size is not None and file_size > cfg.max_file_bytes:
        await refuse(message, services, "oversize",
                     _("This file is too large ({size:.1f} MB). The limit is {limit:.0f} MB.").format(
                         size=file_size / 1024 / 1024, limit=limit_mb))  # fmt: skip
        return
    if duration < 1:
        await refuse(message, services, "too_short", _("This recording is too short. Please answer the question."))
        return
    if duration > q.speaking_time_s + cfg.duration_grace_s:
        await refuse(message, services, "too_long",
                     _("Your answer is {duration} s long, but this task allows {limit} s. Please record a shorter "
                       "answer.").format(duration=duration, limit=q.speaking_time_s))  # fmt: skip
        return

    # The bot's clock, like question_sent_at: Telegram's message date has whole seconds only.
    received_at = repo.now()
    answer = repo.NewAnswer(
        id=repo.answer_id_for(message.chat.id, message.message_id), learner_id=learner.id, question_id=q.id,
        chat_id=message.chat.id, message_id=message.message_id, update_id=update_id, file_unique_id=file_unique_id,
        question_sent_at=learner.current_question_sent_at, received_at=received_at, duration_s=float(duration),
        mime_type=mime_type, size_bytes=file_size or 0, file_id=file_id,
    )  # fmt: skip
    with structlog.contextvars.bound_contextvars(answer_id=str(answer.id), learner_id=str(learner.id)):
        await _take(message, learner, q, answer, services, bot, file_id)


async def _take(
    message: Message, learner: repo.Learner, q: repo.Question, answer: repo.NewAnswer, services: Services, bot: Bot,
    file_id: str,
) -> None:  # fmt: skip
    cfg = services.settings.bot
    async with services.answer_in_flight(answer.id):
        try:
            async with services.db.tx() as cur:
                fresh = await repo.reserve_answer(cur, answer, cfg.publish_lease_s)
        except repo.InsufficientCredits:
            text = _("You have no credits left. Top up to get feedback on this answer, then send it again.")
            await refuse(message, services, "no_credits", text)
            await message.answer(_("Credit packs:"), reply_markup=keyboards.packs(cfg.packs))
            return
        if not fresh:
            log.info("answer already taken", answer_id=str(answer.id))
            return
        await message.reply(_("✅ Answer received ({duration} s). Analysing it now — feedback follows shortly.")
                            .format(duration=int(answer.duration_s)))  # fmt: skip
        await store_and_publish(learner, q, answer, services, bot, file_id)


async def store_and_publish(
    learner: repo.Learner, q: repo.Question, answer: repo.NewAnswer, services: Services, bot: Bot, file_id: str,
    budget_s: float | None = None,
) -> None:  # fmt: skip
    """Download, store and publish; or refund and tell the learner. `budget_s` bounds the download and storing (a
    takeover must be done within its lease, or a second one could start)."""
    cfg = services.settings.bot
    started = time.monotonic()
    key: str | None = None
    if await _being_erased(services, learner, answer.id, None):
        return
    try:
        # Bounded: the download can hang; the publish has its own bound (attempts x the producer's timeout), and
        # a publish cut short might still reach Kafka, so only the storing is timed.
        async with asyncio.timeout(budget_s):
            with _tracer.start_as_current_span("bot.store_audio"):
                # Counted as it streams in: a file larger than Telegram said is cut off at the limit, not buffered.
                buffer = await bot.download(file_id, destination=_Bounded(cfg.max_file_bytes))
                assert buffer is not None
                data = buffer.getvalue()
                key, sha = await services.store.put(data, answer.mime_type)
        if await _being_erased(services, learner, answer.id, key):  # asked while the audio was on its way
            return
        # Booked before the publish: erasure and retention find the object whatever happens next.
        async with services.db.tx() as cur:
            await repo.book_object(cur, answer.id, services.store.bucket, key)
        with _tracer.start_as_current_span("bot.publish", kind=SpanKind.PRODUCER):
            await _publish(learner, q, answer, services, key, sha, len(data))
    except Exception as exc:
        services.metrics.answers.labels("failed").inc()
        log.error("answer not published", answer_id=str(answer.id), error=repr(exc))
        async with services.db.tx() as cur:
            refunded = await repo.answer_failed(cur, answer.id, learner.id)
            orphan = key is not None and not await repo.object_still_used(cur, key)
        if orphan and key is not None:
            await services.store.delete(services.store.bucket, key)
        if not refunded:  # another process published it meanwhile: its feedback is on the way
            return
        if isinstance(exc, _TooBig):
            text = _("This file is too large. The limit is {limit:.0f} MB.").format(limit=cfg.max_file_bytes / 2**20)
        else:
            text = _("Sorry, your answer could not be sent for analysis. Your credit was not spent; please send "
                     "it again.")  # fmt: skip
        # A reply to the voice message, also when a takeover runs long after the update was handled.
        await bot.send_message(
            answer.chat_id, text, reply_parameters=ReplyParameters(message_id=answer.message_id,
                                                                   allow_sending_without_reply=True),
        )  # fmt: skip
        return
    async with services.db.tx() as cur:
        await repo.answer_published(cur, answer.id, services.store.bucket, key, learner)
        erased = await repo.answer_row(cur, answer.id) is None
    if erased:  # the erasure ran while this was published: its list of objects could not have this one
        await _delete_unused(services, key)
        return
    services.metrics.answers.labels("published").inc()
    services.metrics.publish_seconds.observe(time.monotonic() - started)
    log.info("answer published", answer_id=str(answer.id), duration_s=answer.duration_s)


async def _being_erased(services: Services, learner: repo.Learner, answer_id: uuid.UUID, key: str | None) -> bool:
    """An erasure asked for (or done: the answer is gone): nothing more is published for the learner, and audio
    stored meanwhile goes."""
    async with services.db.tx() as cur:
        if not await erasure.pending(cur, learner.id) and await repo.answer_row(cur, answer_id) is not None:
            return False
    log.info("answer dropped: the learner's data is being erased")
    if key is not None:
        await _delete_unused(services, key)
    return True


async def _delete_unused(services: Services, key: str) -> None:
    async with services.db.tx() as cur:
        if await repo.object_still_used(cur, key):
            return
    await services.store.delete(services.store.bucket, key)


async def _publish(
    learner: repo.Learner, q: repo.Question, answer: repo.NewAnswer, services: Services, key: str, sha: str, size: int
) -> None:
    event = RawVoiceAnswer(
        answer_id=str(answer.id), learner_id=str(learner.id), question_id=q.id, track=q.track,
        task_type=q.task_type, interface_language=learner.language, speaking_time_s=q.speaking_time_s,
        question_sent_at=answer.question_sent_at, received_at=answer.received_at,
        audio=AudioObject(bucket=services.store.bucket, key=key, sha256=sha, mime_type=answer.mime_type,
                          size_bytes=size, duration_s=answer.duration_s),
        transcription_temperature=learner.transcription_temperature,
        telegram=TelegramRef(update_id=answer.update_id, chat_id=answer.chat_id, message_id=answer.message_id,
                             file_unique_id=answer.file_unique_id),
        traceparent=current_traceparent(),  # the job continues this trace (Flink's source drops Kafka headers)
    )  # fmt: skip
    await services.publisher.publish(event, services.settings.bot.publish_attempts)


async def recover_stranded(services: Services, bot: Bot, i18n: I18n) -> int:
    """Take over accepted answers whose publishing process died: store and publish each, or refund it and tell
    the learner. Answers this process is publishing itself are left alone. Returns how many were taken over."""
    cfg = services.settings.bot
    # What is left of the lease once the publish's own bound is kept aside: a takeover still downloading then
    # gives up (refund, the learner told) before its lease runs out and another process takes the answer too.
    budget = max(cfg.publish_lease_s / 2, cfg.publish_lease_s - cfg.publish_attempts * 10.0 - 5.0)
    async with services.db.tx() as cur:
        stranded = await repo.claim_stranded(cur, cfg.publish_lease_s, sorted(services.publishing))
    for row in stranded:
        answer = _new_answer(row)
        with structlog.contextvars.bound_contextvars(answer_id=str(answer.id), learner_id=str(answer.learner_id)):
            log.warning("taking over an answer whose publisher died", received_at=answer.received_at.isoformat())
            services.metrics.answers.labels("taken_over").inc()
            async with services.answer_in_flight(answer.id):
                async with services.db.tx() as cur:
                    learner = await repo.learner_by_id(cur, answer.learner_id)
                    q = await repo.question(cur, answer.question_id)
                if learner is None or q is None:  # erased meanwhile: nothing to publish, no one to refund
                    continue
                try:
                    with i18n.context(), i18n.use_locale(learner.language):
                        await store_and_publish(learner, q, answer, services, bot, answer.file_id, budget)
                except TelegramAPIError as exc:  # the learner blocked the bot: the refund is booked all the same
                    log.warning("takeover reply not sent", error=str(exc)[:200])
    return len(stranded)


def _new_answer(row: dict[str, Any]) -> repo.NewAnswer:
    fields = {name: row[name] for name in repo.NewAnswer.__dataclass_fields__ if name != "id"}
    fields["file_id"] = row["file_id"] or ""
    return repo.NewAnswer(id=uuid.UUID(str(row["id"])), **fields)
