"""The pseudonym key: a key anyone could know is refused by every component that makes or publishes pseudonyms,
unless the environment is explicitly local or test (issue: the public default inverted every export's pseudonyms).
"""

from __future__ import annotations

import os
import subprocess
import sys
from unittest import mock

import pytest
from pydantic import SecretStr

from speech_coach.privacy import InsecurePseudonymKey, pseudonym, require_private_key
from speech_coach.settings import PUBLIC_PSEUDONYM_KEY, PrivacySettings, Settings

STRONG = "k" * 16 + "9f3b2a7c1d8e4f60"


def settings_with(env: dict[str, str]) -> Settings:
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ({"SC_ENVIRONMENT": "production"}, "public default"),
        ({}, "public default"),  # local only by default is not explicitly local
        ({"SC_ENVIRONMENT": "production", "SC_PRIVACY__PSEUDONYM_KEY": "short-secret"}, "shorter than 32"),
        ({"SC_ENVIRONMENT": "local"}, None),
        ({"SC_ENVIRONMENT": "test"}, None),
        ({"SC_ENVIRONMENT": "production", "SC_PRIVACY__PSEUDONYM_KEY": STRONG}, None),
    ],
)
def test_only_an_explicitly_local_environment_accepts_a_known_key(env: dict[str, str], refused: str | None) -> None:
    settings = settings_with(env)
    if refused is None:
        require_private_key(settings, "the bot")
        return
    with pytest.raises(InsecurePseudonymKey) as info:
        require_private_key(settings, "the bot")
    message = str(info.value)
    assert refused in message and "SC_PRIVACY__PSEUDONYM_KEY" in message and "fix:" in message
    assert STRONG not in message and "short-secret" not in message  # the key itself is never printed


def test_the_public_key_inverts_pseudonyms_which_is_why_it_is_refused() -> None:
    """What the refusal prevents: with the published key, a pseudonym is inverted by trying Telegram ids."""
    public = Settings(_env_file=None, privacy=PrivacySettings(pseudonym_key=SecretStr(PUBLIC_PSEUDONYM_KEY)))  # type: ignore[call-arg]
    target = pseudonym(public, 123_456)
    assert next(uid for uid in range(123_000, 124_000) if pseudonym(public, uid) == target) == 123_456


def test_the_bot_does_not_start_with_the_public_key_in_production() -> None:
    from bot.app import BotApp, BotNotConfigured

    settings = settings_with({"SC_ENVIRONMENT": "production", "SC_BOT__TOKEN": "123:abc"})
    with pytest.raises(BotNotConfigured, match="public default"):
        BotApp(settings)


@pytest.mark.parametrize("command", [["-m", "bot"], ["-m", "control.cli", "warehouse", "ingest"]])
def test_the_bot_and_ingestion_processes_refuse_with_one_line(command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")} | {
        "SC_ENVIRONMENT": "production", "SC_BOT__TOKEN": "123:abc", "SC_LOG__JSON_OUTPUT": "false",
        # Nothing listens here: the refusal must come before any connection is tried.
        "SC_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9", "SC_CLICKHOUSE__URL": "clickhouse://127.0.0.1:9/x",
    }  # fmt: skip
    out = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode in (1, 2), out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "refuses to start" in text and "public default" in text and "Traceback" not in text, text
