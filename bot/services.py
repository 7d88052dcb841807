"""What the handlers need, built once per bot process and handed to them through the dispatcher."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from bot.db import Database
from bot.metrics import Metrics
from bot.publisher import Publisher
from bot.storage import AudioStore
from speech_coach.privacy import account_hash, pseudonym
from speech_coach.settings import Settings


@dataclass
class Services:
    settings: Settings
    db: Database
    store: AudioStore
    publisher: Publisher
    metrics: Metrics
    _in_flight: int = 0
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    # Answers this process is storing and publishing: a takeover scan must not take its own live work.
    publishing: set[uuid.UUID] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._idle.set()

    def pseudonym(self, telegram_user_id: int) -> str:
        return pseudonym(self.settings, telegram_user_id)

    def account_hash(self, telegram_user_id: int) -> str:
        return account_hash(self.settings, telegram_user_id)

    def is_admin(self, telegram_user_id: int) -> bool:
        return telegram_user_id in self.settings.bot.admin_ids

    @asynccontextmanager
    async def answer_in_flight(self, answer_id: uuid.UUID) -> AsyncIterator[None]:
        """Shutdown waits for answers being stored and published, so none is lost half-way."""
        self.publishing.add(answer_id)
        self._in_flight += 1
        self.metrics.in_flight.inc()
        self._idle.clear()
        try:
            yield
        finally:
            self.publishing.discard(answer_id)
            self._in_flight -= 1
            self.metrics.in_flight.dec()
            if self._in_flight == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
