"""Secrets never appear in logs: a scripted bot flow with every secret configured, every log line of every library
captured at DEBUG, and a grep for each configured secret (docs/reliability.md)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
import structlog
from pydantic import SecretStr

from control.harness.telegram import TelegramStandIn, User
from control.stack import Stack
from speech_coach.logging import configure_logging
from speech_coach.settings import Settings
from tests.bot_harness import TOKEN, RunningBot, bot_settings
from tests.test_bot_ops import post

pytestmark = pytest.mark.stack

WEBHOOK_SECRET = "webhook-S3CRET-value_42"


@pytest.fixture
def all_logs(capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """Every library's stdlib logging at DEBUG to stderr (the captured one), beside the platform's structlog lines."""
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        structlog.reset_defaults()


def test_configured_secrets_never_reach_the_logs(
    stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn, all_logs: None,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    pg_url = pg_database.replace("postgresql://postgres@", "postgresql://postgres:pg-PASSW0RD-secret@")
    base = bot_settings(stack.settings, pg_url, s3_bucket, tg, webhook_url="https://coach.example/tg",
                        webhook_secret=WEBHOOK_SECRET)  # fmt: skip
    settings: Settings = base.model_copy(
        update={
            "openai": base.openai.model_copy(update={"api_key": SecretStr("sk-test-OPENAI-secret-0123456789")}),
            "privacy": base.privacy.model_copy(update={"pseudonym_key": SecretStr("pseudonym-KEY-secret-987")}),
        }
    )
    secrets = settings.secret_values()
    assert {TOKEN, WEBHOOK_SECRET, "pg-PASSW0RD-secret", "sk-test-OPENAI-secret-0123456789",
            "pseudonym-KEY-secret-987", settings.s3.secret_key.get_secret_value()} <= set(secrets)  # fmt: skip
    configure_logging("DEBUG", json_output=True, secrets=secrets)

    bot = RunningBot(settings).start()
    try:
        url = f"http://127.0.0.1:{settings.bot.webhook_port}/tg"
        user = User(tg)

        def send(update_id: int, **content: object) -> None:
            message = {"message_id": update_id, "date": 1700000000, "from": user.user,
                       "chat": {"id": user.id, "type": "private"}, **content}  # fmt: skip
            assert post(url, {"update_id": update_id, "message": message}, WEBHOOK_SECRET) == 200

        # Forged calls, one carrying a near miss of the secret; then a learner's first steps.
        assert post(url, {"update_id": 1}, WEBHOOK_SECRET[:-1]) == 401
        assert post(url, {"update_id": 2}, None) == 401
        send(3, text="/start", entities=[{"type": "bot_command", "offset": 0, "length": 6}])
        user.wait_sent(1)
        # A failure path: Telegram answers 500, the handler fails and aiogram logs the error with its traceback.
        tg.fail("sendMessage")
        send(4, text="/help", entities=[{"type": "bot_command", "offset": 0, "length": 5}])
        tg.wait_for(lambda calls: any(c.method == "sendMessage (failed)" for c in calls))
        send(5, text="/help", entities=[{"type": "bot_command", "offset": 0, "length": 5}])
        user.wait_sent(2)
    finally:
        bot.stop()
    out, err = capfd.readouterr()
    logs = out + err
    # The logs were captured, the failure's traceback included.
    assert "forged webhook request refused" in logs and "TelegramServerError" in logs and "bot stopped" in logs
    leaked = [line[:300] for line in logs.splitlines() if any(s in line for s in secrets)]
    for s in secrets:
        leaked = [line.replace(s, s[:4] + "<secret>") for line in leaked]
    assert not leaked, f"secrets in the logs: {leaked}"
