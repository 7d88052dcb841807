"""Longer learner-facing texts built from translated pieces (all HTML-escaped where they carry data)."""

from __future__ import annotations

from html import escape

from aiogram.utils.i18n import gettext as _

from bot.repo import Question
from speech_coach.contracts.events import TaskType
from speech_coach.contracts.topics import RETENTION_DAYS, Topic
from speech_coach.questions import TASK_LABELS
from speech_coach.settings import Settings


def consent_notice(settings: Settings) -> str:
    return (
        _(
            "<b>Your data and privacy</b>\n\n"
            "<b>What we store:</b> your voice answers (audio files), their transcripts, the feedback and scores, "
            "your settings and your credit balance. We identify you by your Telegram account; researchers only ever "
            "see a pseudonym.\n"
            "<b>Why:</b> to analyse your answers, give you feedback, show your progress and improve the exercises.\n"
            "<b>How long:</b> recordings are kept for {days} days, the rest while you use the bot.\n"
            "<b>Deleting:</b> send /delete_my_data at any time to erase your recordings and personal data "
            "everywhere.\n\n"
            "You can read this again with /privacy. Do you agree?"
        ).format(days=settings.bot.retention_days)
        + "\n\n"
        + _(
            "<b>Research:</b> your answers reach research datasets, under a pseudonym, only if you turn on "
            "“Share with researchers” in /settings. You can turn it off at any time."
        )
        + "\n\n"
        + _(
            "<b>After deleting:</b> we keep a keyed hash of your Telegram account, from which the account cannot be "
            "recovered, for one purpose only: not to give the free starter credits twice. Copies of your answers "
            "passing between our services are not erased one by one: they expire within {days} days."
        ).format(days=transit_days())
    )


def transit_days() -> int:
    """The longest a topic keeps what names a learner (the deletion list itself names only internal ids)."""
    kept = (days for topic, days in RETENTION_DAYS.items() if topic is not Topic.DELETION_REQUESTS)
    return max(days for days in kept if days is not None)


def task_label(task: TaskType) -> str:
    return _(TASK_LABELS[task])


def question_text(q: Question) -> str:
    parts = [f"<b>{escape(task_label(q.task_type))}</b>: {escape(q.title)}"]
    # The material the task gives, each under its heading; long readings and lectures fold away.
    material = (
        (_("Reading"), q.reading, "blockquote expandable"),
        (_("Listening (transcript)"), q.listening, "blockquote expandable"),
        (_("Repeat this sentence"), q.sentence, "blockquote"),
    )
    parts += [f"<b>{head}</b>\n<{tag}>{escape(body)}</blockquote>" for head, body, tag in material if body]
    parts.append(escape(q.prompt))
    if q.tip:
        tip = _("Tip")
        parts.append(f"<i>{tip}: {escape(q.tip)}</i>")
    parts.append(
        _("Preparation: {prep} s · Speaking: {speak} s. Answer with a voice message.").format(
            prep=q.preparation_time_s, speak=q.speaking_time_s
        )
    )
    return "\n\n".join(parts)


def help_text() -> str:
    return _(
        "<b>Speech Coach</b> helps you practise spoken English.\n\n"
        "/practice — choose a track and get a question\n"
        "/stats — your progress as a chart; /last — your last feedback again\n"
        "/balance — your credits; /buy — top up with Telegram Stars; /paysupport — help with a payment\n"
        "/settings — language, repetition, transcription, reminders\n"
        "/privacy — what we store; /delete_my_data — erase it\n\n"
        "Answer each question with a voice message. One feedback costs one credit."
    )
