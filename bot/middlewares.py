"""Outer middlewares: skip redelivered updates, load the learner, bind their pseudonym to every log line."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update, User

from bot import repo
from bot.services import Services
from speech_coach.logging import get_logger

log = get_logger("bot")
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UpdateOnceMiddleware(BaseMiddleware):
    """Telegram redelivers an update when its confirmation is lost (or a webhook call times out): handle each
    update id once. The id is recorded before handling, so a redelivery never repeats a side effect."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        async with self.services.db.tx() as cur:
            await cur.execute(
                "INSERT INTO processed_updates (update_id) VALUES (%s) ON CONFLICT DO NOTHING RETURNING update_id",
                (event.update_id,),
            )
            fresh = await cur.fetchone() is not None
        if not fresh:
            self.services.metrics.duplicate_updates.inc()
            log.info("duplicate update skipped", update_type=event.event_type)
            return None
        self.services.metrics.updates.labels(event.event_type).inc()
        data["update_id"] = event.update_id
        return await handler(event, data)


class LearnerMiddleware(BaseMiddleware):
    def __init__(self, services: Services) -> None:
        self.services = services

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        learner = None
        if user is not None:
            async with self.services.db.tx() as cur:
                learner = await repo.learner_by_telegram(cur, user.id)
        data["learner"] = learner
        # Logs carry the research pseudonym, never Telegram ids or names.
        with structlog.contextvars.bound_contextvars(learner=self.services.pseudonym(user.id) if user else None):
            return await handler(event, data)
