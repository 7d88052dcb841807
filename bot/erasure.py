"""`/delete_my_data`, finished whatever fails on the way: recorded first, then done in steps a sweep retries.

1. `request`: an `erasures` row with what it takes to finish and to tell the learner (chat, language, the keyed
   account hash). From here on no new answer of the learner is published, and audio stored meanwhile is deleted.
2. The deletion event on Kafka, so ingestion erases the warehouse rows and drops later ones.
3. PostgreSQL, in one transaction: the learner's answers are locked (a publication in flight commits first, and
   its object is seen), their audio objects noted on the erasure row, every row about the learner deleted.
4. S3: the noted objects no other answer uses (content-addressed keys can be shared).
5. The learner is told, and the erasure row with its chat id deleted.

Each step is done once (the row says how far it got). A failure leaves the row for the recovery loop of any bot
process, which retries with backoff until done; the learner was told it is under way.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from psycopg.types.json import Jsonb

from bot import repo
from bot.services import Services
from speech_coach.contracts.events import LearnerDeletionRequest
from speech_coach.logging import get_logger

log = get_logger("bot.erasure")
LEASE_S = 120.0


async def request(services: Services, learner: repo.Learner, telegram_user_id: int) -> None:
    async with services.db.tx() as cur:
        await cur.execute(
            "INSERT INTO erasures (learner_id, chat_id, language, account_hash) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (learner_id) DO NOTHING",
            (learner.id, learner.chat_id, learner.language, services.account_hash(telegram_user_id)),
        )


async def pending(cur: repo.Cursor, learner_id: uuid.UUID) -> bool:
    await cur.execute("SELECT 1 FROM erasures WHERE learner_id = %s", (learner_id,))
    return await cur.fetchone() is not None


async def finish(services: Services, bot: Bot, i18n: I18n, learner_id: uuid.UUID) -> bool:
    """Carry the erasure as far as it goes; True once it is done and the learner told."""
    async with services.db.tx() as cur:
        await cur.execute(
            "UPDATE erasures SET claimed_until = now() + make_interval(secs => %s) WHERE learner_id = %s "
            "AND (claimed_until IS NULL OR claimed_until < now()) RETURNING *",
            (LEASE_S, learner_id),
        )
        row = await cur.fetchone()
    if row is None:
        return False  # another process is at it (or it is done)
    with structlog.contextvars.bound_contextvars(learner_id=str(learner_id)):
        try:
            await _steps(services, bot, i18n, row)
        except Exception as exc:
            await _retry_later(services, row, exc)
            return False
    return True


async def _steps(services: Services, bot: Bot, i18n: I18n, row: dict[str, Any]) -> None:
    learner_id = row["learner_id"]
    if row["published_at"] is None:
        await services.publisher.publish(
            LearnerDeletionRequest(learner_id=str(learner_id)), services.settings.bot.publish_attempts
        )
        async with services.db.tx() as cur:
            await cur.execute("UPDATE erasures SET published_at = now() WHERE learner_id = %s", (learner_id,))
    objects = row["objects"]
    if row["erased_at"] is None:
        async with services.db.tx() as cur:
            objects = await repo.learner_objects(cur, learner_id, lock=True)
            await repo.erase_learner(cur, learner_id, row["account_hash"])
            await cur.execute(
                "UPDATE erasures SET erased_at = now(), objects = %s WHERE learner_id = %s",
                (Jsonb([list(o) for o in objects]), learner_id),
            )
    if row["objects_deleted_at"] is None:
        for bucket, key in objects or []:
            async with services.db.tx() as cur:
                shared = await repo.object_still_used(cur, key)
            if not shared:
                await services.store.delete(bucket, key)
        async with services.db.tx() as cur:
            await cur.execute("UPDATE erasures SET objects_deleted_at = now() WHERE learner_id = %s", (learner_id,))
        log.info("learner data erased", objects=len(objects or []))
    with i18n.context(), i18n.use_locale(row["language"]):
        text = _("All your data has been deleted. Send /start if you ever want to come back.")
    try:
        await bot.send_message(row["chat_id"], text)
    except (TelegramRetryAfter, TelegramNetworkError, TelegramServerError):
        raise  # Telegram will take it later
    except TelegramAPIError as exc:  # blocked, chat gone: there is no one left to tell
        log.info("erasure done, the learner could not be told", error=str(exc)[:200])
    async with services.db.tx() as cur:
        await cur.execute("DELETE FROM erasures WHERE learner_id = %s", (learner_id,))


async def _retry_later(services: Services, row: dict[str, Any], exc: Exception) -> None:
    attempts = row["attempts"] + 1
    log.error("erasure interrupted; it is retried", attempts=attempts, error=f"{type(exc).__name__}: {exc}"[:300])
    try:
        async with services.db.tx() as cur:
            await cur.execute(
                "UPDATE erasures SET attempts = %s, last_error = %s, claimed_until = NULL, "
                "next_attempt_at = now() + make_interval(secs => %s) WHERE learner_id = %s",
                (attempts, f"{type(exc).__name__}: {exc}"[:300], min(600, 2**attempts), row["learner_id"]),
            )
    except Exception:  # the database itself is down: the claim runs out and the sweep comes back
        log.exception("erasure retry not recorded")


async def finish_due(services: Services, bot: Bot, i18n: I18n, limit: int = 20) -> int:
    """The sweep: erasures whose retry time came (or whose process died mid-way)."""
    async with services.db.tx() as cur:
        await cur.execute(
            "SELECT learner_id FROM erasures WHERE next_attempt_at <= now() "
            "AND (claimed_until IS NULL OR claimed_until < now()) ORDER BY requested_at LIMIT %s",
            (limit,),
        )
        due = [r["learner_id"] for r in await cur.fetchall()]
    done = 0
    for learner_id in due:
        done += await finish(services, bot, i18n, learner_id)
    return done
