"""Pseudonyms for research data: a keyed HMAC of the Telegram id, so exports can never be joined back to a
Telegram account without the key, while the same learner keeps the same pseudonym across exports."""

from __future__ import annotations

import hashlib
import hmac

from speech_coach.settings import Settings


def pseudonym(settings: Settings, telegram_user_id: int) -> str:
    key = settings.privacy.pseudonym_key.get_secret_value().encode()
    digest = hmac.new(key, str(telegram_user_id).encode(), hashlib.sha256).hexdigest()
    return f"L{digest[:24]}"  # 96 bits: no collisions at any realistic learner count
