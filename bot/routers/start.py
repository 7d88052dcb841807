"""Onboarding (language, then consent), /help, /privacy and /delete_my_data."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot import erasure, keyboards, repo
from bot.callbacks import ConsentCb, DeleteCb, LanguageCb, MenuCb
from bot.i18n import current_language, language_for
from bot.services import Services
from bot.texts import consent_notice, help_text
from speech_coach.i18n import ngettext
from speech_coach.logging import get_logger

router = Router(name="start")
log = get_logger("bot.start")


class Onboarding(StatesGroup):
    language = State()
    consent = State()


@router.message(CommandStart())
async def start(message: Message, learner: repo.Learner | None, services: Services, state: FSMContext) -> None:
    assert message.from_user is not None
    if learner is None:
        async with services.db.tx() as cur:
            learner = await repo.create_learner(
                cur, message.from_user.id, message.chat.id, services.pseudonym(message.from_user.id),
                language_for(message.from_user), services.settings.bot.starter_credits,
                services.account_hash(message.from_user.id),
            )  # fmt: skip
        log.info("learner created")
    if not learner.consented:
        await state.set_state(Onboarding.language)
        await message.answer(_("Welcome to Speech Coach! Choose your interface language:"),
                             reply_markup=keyboards.languages(onboarding=True))  # fmt: skip
        return
    await message.answer(_("Welcome back! Choose what to practise:"), reply_markup=keyboards.menu())


@router.callback_query(LanguageCb.filter())
async def choose_language(
    query: CallbackQuery, callback_data: LanguageCb, learner: repo.Learner | None, services: Services,
    state: FSMContext, i18n: I18n,
) -> None:  # fmt: skip
    if learner is None or callback_data.code not in repo.SUPPORTED_LANGUAGES:
        await query.answer()
        return
    async with services.db.tx() as cur:
        await repo.update_learner(cur, learner.id, language=callback_data.code)
    i18n.current_locale = callback_data.code  # the rest of this reply is in the new language
    await query.answer(_("Language saved."))
    assert isinstance(query.message, Message)
    if callback_data.onboarding and not learner.consented:
        await state.set_state(Onboarding.consent)
        await query.message.answer(consent_notice(services.settings), reply_markup=keyboards.consent())
    else:
        await query.message.answer(_("Language saved."), reply_markup=keyboards.to_menu())


@router.callback_query(ConsentCb.filter())
async def consent(
    query: CallbackQuery, callback_data: ConsentCb, learner: repo.Learner | None, services: Services,
    state: FSMContext,
) -> None:  # fmt: skip
    await query.answer()
    assert isinstance(query.message, Message)
    if learner is None:
        return
    if not callback_data.accept:
        await query.message.answer(
            _("Without your consent we cannot process voice answers. Send /start when you change your mind.")
        )
        return
    if not learner.consented:
        async with services.db.tx() as cur:
            await repo.record_consent(cur, learner.id)
        log.info("consent recorded", notice_version=repo.NOTICE_VERSION)
    await state.clear()
    async with services.db.tx() as cur:
        credits = await repo.balance(cur, learner.id)
    greeting = (
        ngettext(
            current_language(),
            "Thank you! You have {credits} free credit; one feedback costs one credit.",
            "Thank you! You have {credits} free credits; one feedback costs one credit.",
            credits,
        ).format(credits=credits)
        if credits
        else _("Thank you! Free starter credits are given once per Telegram account; top up with /buy. "
               "One feedback costs one credit.")
    )  # fmt: skip
    await query.message.answer(
        greeting + "\n\n" + _("Choose what to practise:"),
        reply_markup=keyboards.menu(),
    )  # fmt: skip


@router.message(Command("help"))
async def help_(message: Message) -> None:
    await message.answer(help_text())


@router.message(Command("privacy"))
async def privacy(message: Message, learner: repo.Learner | None, services: Services) -> None:
    markup = keyboards.consent() if learner is not None and not learner.consented else None
    await message.answer(consent_notice(services.settings), reply_markup=markup)


@router.callback_query(MenuCb.filter())
async def menu(query: CallbackQuery) -> None:
    await query.answer()
    assert isinstance(query.message, Message)
    await query.message.answer(_("Choose what to practise:"), reply_markup=keyboards.menu())


@router.message(Command("delete_my_data"))
async def delete_my_data(message: Message, learner: repo.Learner | None) -> None:
    if learner is None:
        await message.answer(_("We hold no data about you."))
        return
    await message.answer(
        _("This permanently deletes your recordings, transcripts, feedback, progress, settings and credits. "
          "Continue?"),
        reply_markup=keyboards.confirm_delete(),
    )  # fmt: skip


@router.callback_query(DeleteCb.filter())
async def confirm_delete(
    query: CallbackQuery, callback_data: DeleteCb, learner: repo.Learner | None, services: Services, bot: Bot,
    state: FSMContext, i18n: I18n,
) -> None:  # fmt: skip
    await query.answer()
    assert isinstance(query.message, Message)
    if learner is None:
        await query.message.answer(_("We hold no data about you."))
        return
    if not callback_data.confirm:
        await query.message.answer(_("Nothing was deleted."))
        return
    assert query.from_user is not None
    # Recorded first: from then on the erasure is finished whatever fails, by this handler or the recovery sweep.
    try:
        await erasure.request(services, learner, query.from_user.id)
    except Exception:
        log.exception("erasure not recorded")
        await query.message.answer(_("Deleting failed for a technical reason. Nothing was deleted; please try again."))
        return
    await state.clear()
    if not await erasure.finish(services, bot, i18n, learner.id):  # done: the learner was told by `finish`
        await query.message.answer(
            _("Your data is being deleted. A technical problem is holding it up; we keep trying and will tell you "
              "here when everything is gone.")
        )  # fmt: skip
