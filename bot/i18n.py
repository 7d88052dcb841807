"""The bot's translations: aiogram's I18n over the core's catalogs (speech_coach/locales, `speech_coach.i18n`).

The same compiled catalogs serve the answer job's texts and the bot's, so a learner reads one set of texts
whichever runtime wrote them. The learner's language comes from their settings, else from Telegram's
`language_code`, else English.
"""

from __future__ import annotations

import tempfile
from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware, get_i18n

from bot.repo import Learner
from speech_coach import i18n


def make_i18n() -> I18n:
    """aiogram's I18n over the core's translations, compiled in memory: no `.mo` files and no writable directory
    (the package may be read-only in a container image)."""
    # I18n only knows how to load `.mo` files from a directory: start it on an empty one, then hand it the
    # core's catalogs. (A subclass would not do: aiogram's gettext finds the I18n in context by exact class.)
    with tempfile.TemporaryDirectory(prefix="speech-coach-i18n-") as empty:
        bot_i18n = I18n(path=empty, default_locale=i18n.DEFAULT_LANGUAGE, domain=i18n.DOMAIN)
    bot_i18n.locales = {lang: i18n.translations(lang) for lang in i18n.languages()}
    return bot_i18n


def current_language() -> str:
    """The language aiogram's I18n renders in now, for the core's `ngettext(lang, ...)`: a count's plural form
    comes from the same compiled catalog (aiogram's own plural call could not be told apart from the core's
    when the texts are extracted)."""
    return get_i18n().current_locale


def language_for(user: User | None) -> str:
    return i18n.language(user.language_code if user else None)


class LearnerI18nMiddleware(I18nMiddleware):
    """The learner's chosen language; before they choose, Telegram's language_code."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        learner: Learner | None = data.get("learner")
        if learner is not None:
            return learner.language
        return language_for(data.get("event_from_user"))
