"""Outer middlewares: private chats only, skip redelivered updates, load the learner, bind their pseudonym to every
log line."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware, Bot
from aiogram.enums import ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.types import Chat, TelegramObject, Update, User

from bot import repo
from bot.services import Services
from speech_coach.i18n import gettext, language
from speech_coach.logging import get_logger

log = get_logger("bot")
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UpdateOnceMiddleware(BaseMiddleware):
    """Telegram redelivers an update when its confirmation is lost (or a webhook call times out): handle each
    update id once. The id is recorded only after its handler succeeded, so an update whose handling crashed
    is handled again when Telegram redelivers it; handlers' side effects are idempotent per cause (an answer
    id per chat and message, one charge, refund and purchase per reference), so a repeat changes nothing.
    A redelivery that arrives while the first copy is still being handled in this process is skipped too."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._in_flight: set[int] = set()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        update_id = event.update_id
        if update_id in self._in_flight:  # checked and claimed with no await between: one task per update id
            return self._skip(event)
        self._in_flight.add(update_id)
        try:
            async with self.services.db.tx() as cur:
                await cur.execute("SELECT 1 FROM processed_updates WHERE update_id = %s", (update_id,))
                if await cur.fetchone() is not None:
                    return self._skip(event)
            self.services.metrics.updates.labels(event.event_type).inc()
            data["update_id"] = update_id
            result = await handler(event, data)  # an exception leaves the id unrecorded: a redelivery is handled
            async with self.services.db.tx() as cur:
                await cur.execute(
                    "INSERT INTO processed_updates (update_id) VALUES (%s) ON CONFLICT DO NOTHING", (update_id,)
                )
            return result
        finally:
            self._in_flight.discard(update_id)

    def _skip(self, event: Update) -> None:
        self.services.metrics.duplicate_updates.inc()
        log.info("duplicate update skipped", update_type=event.event_type)


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


class PrivateChatsOnly(BaseMiddleware):
    """The bot serves one learner per chat: in a group its feedback, transcripts, reminders and broadcasts would
    reach everyone there, an anonymous admin would be one shared learner, and anyone could press another member's
    buttons. So updates from any chat but a private one change nothing: a command gets a polite pointer to a
    private chat, a button press a short notice, anything else silence."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        chat = _chat_of(event)
        if chat is None or chat.type == ChatType.PRIVATE:
            return await handler(event, data)
        bot: Bot = data["bot"]
        lang = language(event_language(event))
        note = gettext(lang, "I work in private chats only, so that your answers and feedback stay yours. "
                             "Open a chat with me and send /start there.")  # fmt: skip
        with contextlib.suppress(TelegramAPIError):
            if event.callback_query is not None:
                await event.callback_query.answer(note[:200], show_alert=True)
            elif event.message is not None and (event.message.text or "").startswith("/"):
                await bot.send_message(chat.id, note)
        log.info("update from a non-private chat ignored", chat_type=chat.type, update_type=event.event_type)
        return None


def _chat_of(update: Update) -> Chat | None:
    if update.callback_query is not None:
        message = update.callback_query.message
        return message.chat if message is not None else None
    for item in (update.message, update.edited_message, update.channel_post, update.edited_channel_post,
                 update.my_chat_member, update.chat_member, update.chat_join_request):  # fmt: skip
        if item is not None:
            return item.chat
    return None


def event_language(update: Update) -> str | None:
    for item in (update.message, update.callback_query):
        user = getattr(item, "from_user", None)
        if user is not None:
            return user.language_code  # type: ignore[no-any-return]
    return None
