"""/stats (a chart of progress), /last (the newest feedback again, delivered or not) and /balance."""

from __future__ import annotations

import asyncio

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, Message
from aiogram.utils.i18n import gettext as _

from bot import keyboards, repo
from bot.delivery import last_feedback, render
from bot.i18n import current_language
from bot.routers.practice import gate
from bot.services import Services
from speech_coach.charts import stats_png, top_words
from speech_coach.i18n import ngettext

router = Router(name="progress")


@router.message(Command("stats"))
async def stats(message: Message, learner: repo.Learner | None, services: Services) -> None:
    if not (learner := await gate(message, learner, services)):
        return
    async with services.db.tx() as cur:
        rows = await repo.delivered_answers(cur, learner.id)
    if not rows:
        await message.answer(_("No feedback yet. Answer a question and your progress will show here."),
                             reply_markup=keyboards.menu())  # fmt: skip
        return
    labels = {
        "title": _("Your progress, {date}"), "score": _("Overall score"), "answer": _("answer"),
        "ld_last10": _("Lexical diversity: last 10 answers"), "ld_day": _("Lexical diversity per day"),
        "ld_month": _("Lexical diversity per month"), "wpm": _("Speaking rate (words/min)"),
        "words": _("Most-used words"),
    }  # fmt: skip
    png = await asyncio.to_thread(stats_png, rows, labels)
    scores = [r["overall_score"] for r in rows if r["overall_score"] is not None]
    caption = _("Answers with feedback: {n}. Average score: {avg}. Most-used words: {words}.").format(
        n=len(rows), avg=f"{sum(scores) / len(scores):.1f}" if scores else "—",
        words=", ".join(w for w, _n in top_words(rows, 5)) or "—",
    )  # fmt: skip
    await message.answer_photo(BufferedInputFile(png, "progress.png"), caption=caption)


@router.message(Command("last"))
async def last(message: Message, learner: repo.Learner | None, services: Services) -> None:
    """Feedback that Telegram would not take (an outage, a blocked bot since unblocked) is still the learner's."""
    if learner is None:
        await message.answer(_("Send /start to begin."))
        return
    found = await last_feedback(services, learner.id)
    if found is None:
        await message.answer(_("No feedback yet. Answer a question and your progress will show here."),
                             reply_markup=keyboards.menu())  # fmt: skip
        return
    result, question = found
    texts = render(result, question.title, current_language())
    for i, text in enumerate(texts):
        last_part = i == len(texts) - 1
        await message.answer(
            text, reply_markup=keyboards.after_feedback(repo.KIND_OF_TASK[question.task_type], question.id)
            if last_part else None,
        )  # fmt: skip


@router.message(Command("balance"))
async def balance(message: Message, learner: repo.Learner | None, services: Services) -> None:
    if learner is None:
        await message.answer(_("Send /start to begin."))
        return
    async with services.db.tx() as cur:
        credits = await repo.balance(cur, learner.id)
    await message.answer(
        ngettext(
            current_language(),
            "Your balance: {credits} credit. One feedback costs one credit.",
            "Your balance: {credits} credits. One feedback costs one credit.",
            credits,
        ).format(credits=credits),
        reply_markup=keyboards.packs(services.settings.bot.packs),
    )
