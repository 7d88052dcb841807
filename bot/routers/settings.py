"""/settings: language, repetition, transcription temperature, the daily reminder and research sharing."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot import keyboards, repo
from bot.callbacks import SettingsCb
from bot.routers.practice import gate
from bot.services import Services

router = Router(name="settings")


@router.message(Command("settings"))
async def show(message: Message, learner: repo.Learner | None, services: Services) -> None:
    if learner := await gate(message, learner, services):
        await message.answer(_("Your settings:"), reply_markup=keyboards.settings(learner))


@router.callback_query(SettingsCb.filter())
async def change(
    query: CallbackQuery, callback_data: SettingsCb, learner: repo.Learner | None, services: Services
) -> None:
    await query.answer()
    assert isinstance(query.message, Message)
    if learner is None:
        return
    if callback_data.name == "language":
        await query.message.answer(_("Choose your interface language:"), reply_markup=keyboards.languages(False))
        return
    value: bool | float
    if callback_data.name in ("repetition", "reminders", "research_consent"):
        value = callback_data.value == "on"
    elif callback_data.name == "temperature" and callback_data.value in keyboards.TEMPERATURES:
        value = float(callback_data.value)
        callback_data = SettingsCb(name="transcription_temperature", value=callback_data.value)
    else:
        return
    async with services.db.tx() as cur:
        await repo.update_learner(cur, learner.id, **{callback_data.name: value})
        updated = await repo.learner_by_id(cur, learner.id)
    assert updated is not None
    await query.message.edit_reply_markup(reply_markup=keyboards.settings(updated))
