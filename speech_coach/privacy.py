"""Pseudonyms for research data: a keyed HMAC of the Telegram id, so exports can never be joined back to a
Telegram account without the key, while the same learner keeps the same pseudonym across exports."""

from __future__ import annotations

import hashlib
import hmac

from speech_coach.settings import PUBLIC_PSEUDONYM_KEY, Settings

MIN_KEY_LENGTH = 32  # an HMAC key short enough to guess is as bad as a public one


class InsecurePseudonymKey(RuntimeError):
    """The pseudonym key would let anyone invert pseudonyms; the message names the fix for the operator."""


def require_private_key(settings: Settings, component: str) -> None:
    """Refuse to run `component` with a key anyone could know, unless the environment is explicitly local or test.

    Telegram ids are a small space: with a known key every pseudonym in a published export is inverted by
    hashing all of them."""
    if settings.environment in ("local", "test") and "environment" in settings.model_fields_set:
        return
    key = settings.privacy.pseudonym_key.get_secret_value()
    if key == PUBLIC_PSEUDONYM_KEY:
        cause = "SC_PRIVACY__PSEUDONYM_KEY is the public default, with which anyone can invert every pseudonym"
    elif len(key) < MIN_KEY_LENGTH:
        cause = f"SC_PRIVACY__PSEUDONYM_KEY is shorter than {MIN_KEY_LENGTH} characters, so it can be guessed"
    else:
        return
    raise InsecurePseudonymKey(
        f"{component} refuses to start: {cause} - fix: set it to a long random secret "
        "(python -c 'import secrets; print(secrets.token_hex(32))'), or on a developer machine SC_ENVIRONMENT=local"
    )


def pseudonym(settings: Settings, telegram_user_id: int) -> str:
    key = settings.privacy.pseudonym_key.get_secret_value().encode()
    digest = hmac.new(key, str(telegram_user_id).encode(), hashlib.sha256).hexdigest()
    return f"L{digest[:24]}"  # 96 bits: no collisions at any realistic learner count
