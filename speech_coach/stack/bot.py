"""The Telegram bot as a platform process of `make run`: `python -m bot`, started only when a token is set.

The core never imports the bot package; it starts it as a subprocess with the resolved settings in its
environment, and reads its health from `/readyz` (PostgreSQL and Kafka reachable).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from speech_coach.settings import Settings
from speech_coach.stack.base import ManagedPart


def _env_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, Path):
        return str(value.expanduser().resolve()) if not value.is_absolute() else str(value)
    return str(value)


def full_settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as an SC_* variable, so a child process resolves exactly what this process resolved
    (a `.env` file next to the operator is not next to the child, which runs in its data directory)."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if isinstance(value, BaseModel):
            for sub in type(value).model_fields:
                if (text := _env_value(getattr(value, sub))) is not None:
                    env[f"SC_{name.upper()}__{sub.upper()}"] = text
        elif (text := _env_value(value)) is not None:
            env[f"SC_{name.upper()}"] = text
    return env


class BotPart(ManagedPart):
    name = "bot"

    @property
    def external(self) -> bool:
        return False

    @property
    def configured(self) -> bool:
        return bool(self.settings.bot.token.get_secret_value())

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.settings.bot.health_port}/readyz"

    def ports(self) -> list[int]:
        ports = [self.settings.bot.health_port]
        if self.settings.bot.webhook_url:
            ports.append(self.settings.bot.webhook_port)
        return ports

    def port_setting_hint(self) -> str:
        return "SC_BOT__HEALTH_PORT"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bot"]

    def env(self) -> dict[str, str]:
        return super().env() | full_settings_env(self.settings)

    def check(self) -> str | None:
        try:
            with urllib.request.urlopen(self.address, timeout=5) as response:  # noqa: S310 - loopback URL from settings
                return None if response.status == 200 else f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            return f"not ready: {exc.read().decode(errors='replace')[:200]}"
        except (urllib.error.URLError, OSError) as exc:
            return str(exc)
