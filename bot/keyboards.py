"""Inline keyboards. Button labels are translated like every other string."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import (
    BuyCb,
    ConsentCb,
    DeleteCb,
    LanguageCb,
    MenuCb,
    PracticeCb,
    RetryCb,
    SettingsCb,
)  # fmt: skip
from bot.i18n import current_language
from bot.repo import Learner
from speech_coach.i18n import ngettext

LANGUAGE_NAMES = {"en": "English", "ru": "Русский"}
TEMPERATURES = ("0.0", "0.2", "0.4")


def practice_label(kind: str) -> str:
    return {
        "toefl1": _("TOEFL Task 1 (independent)"),
        "toefl234": _("TOEFL Tasks 2–4 (integrated)"),  # noqa: RUF001 - typographic dash
        "listen": _("TOEFL Listen and Repeat"),
        "interview": _("TOEFL Take an Interview"),
        "job": _("Job interview"),
        "work": _("Workplace conversations"),
    }[kind]


def languages(onboarding: bool) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for code, name in LANGUAGE_NAMES.items():
        kb.button(text=name, callback_data=LanguageCb(code=code, onboarding=onboarding))
    return kb.as_markup()


def consent() -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=_("I agree"), callback_data=ConsentCb(accept=True))
    kb.button(text=_("I do not agree"), callback_data=ConsentCb(accept=False))
    return kb.adjust(1).as_markup()


def menu() -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for kind in ("toefl1", "toefl234", "listen", "interview", "job", "work"):
        kb.button(text=practice_label(kind), callback_data=PracticeCb(kind=kind))
    return kb.adjust(1).as_markup()


def after_feedback(kind: str, question_id: str) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=_("Next"), callback_data=PracticeCb(kind=kind))
    kb.button(text=_("Retry"), callback_data=RetryCb(question_id=question_id))
    kb.button(text=_("Menu"), callback_data=MenuCb())
    return kb.adjust(3).as_markup()


def settings(learner: Learner) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=_("Language: {name}").format(name=LANGUAGE_NAMES[learner.language]),
              callback_data=SettingsCb(name="language"))  # fmt: skip
    kb.button(
        text=_("Repetition: on") if learner.repetition else _("Repetition: off"),
        callback_data=SettingsCb(name="repetition", value="off" if learner.repetition else "on"),
    )
    current = f"{learner.transcription_temperature:.1f}"
    following = (
        TEMPERATURES[(TEMPERATURES.index(current) + 1) % len(TEMPERATURES)] if current in TEMPERATURES else "0.0"
    )
    kb.button(text=_("Transcription temperature: {value}").format(value=current),
              callback_data=SettingsCb(name="temperature", value=following))  # fmt: skip
    kb.button(
        text=_("Daily reminder: on") if learner.reminders else _("Daily reminder: off"),
        callback_data=SettingsCb(name="reminders", value="off" if learner.reminders else "on"),
    )
    kb.button(
        text=_("Share with researchers: on") if learner.research_consent else _("Share with researchers: off"),
        callback_data=SettingsCb(name="research_consent", value="off" if learner.research_consent else "on"),
    )
    return kb.adjust(1).as_markup()


def packs(packs: dict[int, int]) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for credits, stars in packs.items():
        label = ngettext(
            current_language(), "{credits} credit for {stars} ⭐", "{credits} credits for {stars} ⭐", credits
        )
        kb.button(text=label.format(credits=credits, stars=stars), callback_data=BuyCb(credits=credits))
    return kb.adjust(1).as_markup()


def confirm_delete() -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=_("Yes, delete everything"), callback_data=DeleteCb(confirm=True))
    kb.button(text=_("No, keep my data"), callback_data=DeleteCb(confirm=False))
    return kb.adjust(1).as_markup()


def to_menu() -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=_("Menu"), callback_data=MenuCb())
    return kb.as_markup()
