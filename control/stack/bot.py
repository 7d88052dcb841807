"""The Telegram bot as a platform process of `make run`: `python -m bot`, started only when a token is set.

The stack starts the bot as a subprocess with the resolved settings in its environment, and reads its health from
`/readyz` (PostgreSQL and Kafka reachable).
"""

from __future__ import annotations

import sys

from control.stack.services import ServicePart
from speech_coach.settings import Settings


class BotPart(ServicePart):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, "bot", [sys.executable, "-m", "bot"], "SC_BOT__HEALTH_PORT")

    @property
    def configured(self) -> bool:
        return bool(self.settings.bot.token.get_secret_value())

    def ports(self) -> list[int]:
        return super().ports() + ([self.settings.bot.webhook_port] if self.settings.bot.webhook_url else [])
