"""Typed callback data of every inline button."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class LanguageCb(CallbackData, prefix="lang"):
    code: str
    onboarding: bool = False


class ConsentCb(CallbackData, prefix="consent"):
    accept: bool


class PracticeCb(CallbackData, prefix="practice"):
    kind: str  # a key of bot.repo.PRACTICE_KINDS


class RetryCb(CallbackData, prefix="retry"):
    question_id: str


class MenuCb(CallbackData, prefix="menu"):
    pass


class SettingsCb(CallbackData, prefix="set"):
    name: str  # repetition | reminders | research_consent | temperature | language
    value: str = ""


class BuyCb(CallbackData, prefix="buy"):
    credits: int


class DeleteCb(CallbackData, prefix="erase"):
    confirm: bool


class BroadcastCb(CallbackData, prefix="bcast"):
    send: bool
