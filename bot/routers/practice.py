"""Practice tracks: the menu, the next question for the learner, and Retry."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot import keyboards, repo
from bot.callbacks import PracticeCb, RetryCb
from bot.services import Services
from bot.texts import consent_notice, question_text

router = Router(name="practice")


async def gate(message: Message, learner: repo.Learner | None, services: Services) -> repo.Learner | None:
    """The learner, if they may practise; otherwise tell them what is missing."""
    if learner is None:
        await message.answer(_("Send /start to begin."))
        return None
    if not learner.consented:
        await message.answer(consent_notice(services.settings), reply_markup=keyboards.consent())
        return None
    return learner


async def send_question(message: Message, learner: repo.Learner, q: repo.Question, services: Services) -> None:
    async with services.db.tx() as cur:
        await repo.mark_sent(cur, learner.id, q.id)
    await message.answer(question_text(q))


@router.message(Command("practice"))
async def practice(message: Message, learner: repo.Learner | None, services: Services) -> None:
    if await gate(message, learner, services):
        await message.answer(_("Choose what to practise:"), reply_markup=keyboards.menu())


@router.callback_query(PracticeCb.filter())
async def next_question(
    query: CallbackQuery, callback_data: PracticeCb, learner: repo.Learner | None, services: Services
) -> None:
    await query.answer()
    assert isinstance(query.message, Message)
    if callback_data.kind not in repo.PRACTICE_KINDS or not (learner := await gate(query.message, learner, services)):
        return
    async with services.db.tx() as cur:
        q = await repo.pick_question(cur, learner, callback_data.kind)
    if q is None:
        await query.message.answer(
            _("You have answered every question of this track. Turn on repetition in /settings to practise "
              "them again, or choose another track."),
            reply_markup=keyboards.menu(),
        )  # fmt: skip
        return
    await send_question(query.message, learner, q, services)


@router.callback_query(RetryCb.filter())
async def retry(query: CallbackQuery, callback_data: RetryCb, learner: repo.Learner | None, services: Services) -> None:
    await query.answer()
    assert isinstance(query.message, Message)
    if not (learner := await gate(query.message, learner, services)):
        return
    async with services.db.tx() as cur:
        q = await repo.question(cur, callback_data.question_id)
    if q is None:
        await query.message.answer(_("Choose what to practise:"), reply_markup=keyboards.menu())
        return
    await send_question(query.message, learner, q, services)
