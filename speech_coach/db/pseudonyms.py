"""Re-keying: after the pseudonym key is rotated, every learner's stored pseudonym is recomputed with the new one.

Pseudonyms are computed once, when a learner signs up, and stored (`learners.pseudonym`); the hourly learners sync
copies them to the warehouse, and exports read them there. So rotating the key alone changes nothing for existing
learners. Re-keying rewrites them in one transaction; the next sync replaces the warehouse's copies, and releases
built afterwards carry only new pseudonyms. Releases already published keep the old ones: across the rotation a
learner's rows can no longer be linked by pseudonym, which is the point after a key leak.
"""

from __future__ import annotations

import psycopg

from speech_coach.privacy import pseudonym, require_private_key
from speech_coach.settings import Settings


def rekey_pseudonyms(settings: Settings) -> int:
    """Recompute every stored pseudonym with the configured key; returns how many changed."""
    require_private_key(settings, "re-keying")
    with psycopg.connect(settings.postgres_url) as conn:
        rows = conn.execute("SELECT id, telegram_user_id, pseudonym FROM learners FOR UPDATE").fetchall()
        changed = [
            (new, learner) for learner, telegram_id, old in rows if (new := pseudonym(settings, telegram_id)) != old
        ]
        with conn.cursor() as cur:
            cur.executemany("UPDATE learners SET pseudonym = %s WHERE id = %s", changed)
    return len(changed)
