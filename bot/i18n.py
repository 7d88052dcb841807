"""Translation catalogs: gettext `.po` files under `bot/locales`, compiled in memory when the bot starts.

Compiling at start-up (Babel) means a fresh clone needs no build step and no `.mo` files can go stale.
The learner's language comes from their settings, else from Telegram's `language_code`, else English.
"""

from __future__ import annotations

import gettext
import io
from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.repo import SUPPORTED_LANGUAGES, Learner

LOCALES = Path(__file__).parent / "locales"
DOMAIN = "messages"


class CatalogI18n(I18n):
    def find_locales(self) -> dict[str, gettext.GNUTranslations]:
        translations: dict[str, gettext.GNUTranslations] = {}
        for po_path in sorted(self.path.glob(f"*/LC_MESSAGES/{self.domain}.po")):
            with po_path.open("rb") as handle:
                catalog = read_po(handle, locale=po_path.parents[1].name)
            buffer = io.BytesIO()
            write_mo(buffer, catalog)
            buffer.seek(0)
            translations[po_path.parents[1].name] = gettext.GNUTranslations(buffer)
        return translations


def make_i18n() -> CatalogI18n:
    return CatalogI18n(path=LOCALES, default_locale="en", domain=DOMAIN)


def language_for(user: User | None) -> str:
    code = (user.language_code or "").split("-")[0].lower() if user else ""
    return code if code in SUPPORTED_LANGUAGES else "en"


class LearnerI18nMiddleware(I18nMiddleware):
    """The learner's chosen language; before they choose, Telegram's language_code."""

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        learner: Learner | None = data.get("learner")
        if learner is not None:
            return learner.language
        return language_for(data.get("event_from_user"))
