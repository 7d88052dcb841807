"""Every text a learner sees, in their language: one gettext catalog per language, shipped in this package.

The catalogs are `speech_coach/locales/<lang>/LC_MESSAGES/messages.po`, read as package data (they work from a
wheel or a zip) and compiled by Babel in memory on first use, so a fresh clone needs no build step and no `.mo`
file can go stale. Each runtime renders through them: the answer job (feedback engines, rejections) with the
explicit `gettext(lang, ...)` below, the bot with aiogram's I18n fed `translations()`. A language without a
catalog gets English; a message missing from a catalog falls back to the English text.

This module imports no runtime framework (the answer job has no aiogram).
"""

from __future__ import annotations

import gettext as _gettext
import io
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DOMAIN = "messages"
DEFAULT_LANGUAGE = "en"

# Babel extraction keywords for every way our code marks a learner text: the core's explicit-language calls
# (`gettext(lang, msg)`, `ngettext(lang, one, many, n)`), aiogram's `_(msg)` in the bot, and `N_(msg)` for texts
# kept in tables and translated where shown. The same list, for pybabel: docs/operator-guide.md.
EXTRACT_KEYWORDS: dict[str, tuple[int, ...] | None] = {"_": None, "N_": None, "gettext": (2,), "ngettext": (2, 3)}


def N_(message: str) -> str:
    """Mark a text for extraction where it is defined; translate it where it is shown."""
    return message


def _locales() -> Traversable:
    return files("speech_coach") / "locales"


def catalog_file(lang: str) -> Traversable:
    return _locales() / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def languages() -> tuple[str, ...]:
    """The languages with a catalog, English first."""
    found = sorted(d.name for d in _locales().iterdir() if d.is_dir() and catalog_file(d.name).is_file())
    return tuple(sorted(found, key=lambda lang: lang != DEFAULT_LANGUAGE))


def language(code: str | None) -> str:
    """A supported language for an interface language code ("ru", "ru-RU"); English otherwise."""
    base = (code or "").split("-")[0].split("_")[0].lower()
    return base if base in languages() else DEFAULT_LANGUAGE


def read_catalog(lang: str) -> Catalog:
    with catalog_file(lang).open("rb") as handle:
        return read_po(handle, locale=lang, domain=DOMAIN)


@cache
def translations(lang: str) -> _gettext.GNUTranslations:
    """The compiled catalog of a supported language; other languages, and missing messages, fall back to English."""
    lang = language(lang)
    buffer = io.BytesIO()
    write_mo(buffer, read_catalog(lang))  # untranslated and fuzzy entries are left out, so the msgid shows
    buffer.seek(0)
    compiled = _gettext.GNUTranslations(buffer)
    if lang != DEFAULT_LANGUAGE:
        compiled.add_fallback(translations(DEFAULT_LANGUAGE))
    return compiled


def gettext(lang: str, message: str) -> str:
    return translations(lang).gettext(message)


def ngettext(lang: str, singular: str, plural: str, n: int) -> str:
    """The form for `n` in the language's plural rule (Russian has three: 1 слово, 2 слова, 5 слов)."""
    return translations(lang).ngettext(singular, plural, n)
