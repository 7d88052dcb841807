"""Translation catalogs: gettext `.po` files under `bot/locales`, compiled when the bot starts.

Compiling at start-up (Babel) means a fresh clone needs no build step and no `.mo` files can go stale.
The learner's language comes from their settings, else from Telegram's `language_code`, else English.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from bot.repo import SUPPORTED_LANGUAGES, Learner

LOCALES = Path(__file__).parent / "locales"
DOMAIN = "messages"


def compile_catalogs(target: Path) -> Path:
    """Compile every `.po` catalog to `<target>/<locale>/LC_MESSAGES/<domain>.mo`, the layout I18n reads."""
    for po_path in sorted(LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        locale = po_path.parents[1].name
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=locale)
        out = target / locale / "LC_MESSAGES" / f"{DOMAIN}.mo"
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("wb") as handle:
            write_mo(handle, catalog)
    return target


def make_i18n() -> I18n:
    # A private directory per process: the package directory may be read-only in a container image.
    target = Path(tempfile.mkdtemp(prefix="speech-coach-locales-"))
    try:
        return I18n(path=compile_catalogs(target), default_locale="en", domain=DOMAIN)
    finally:
        shutil.rmtree(target, ignore_errors=True)  # I18n loaded the catalogs into memory


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
