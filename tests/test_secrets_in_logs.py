"""Secrets never appear in logs: a scripted bot flow with every secret configured, every log line of every library
captured at DEBUG, and a grep for each configured secret (docs/reliability.md)."""

from __future__ import annotations

import base64
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

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

        def send(update_id: int, status: int = 200, **content: object) -> None:
            message = {"message_id": update_id, "date": 1700000000, "from": user.user,
                       "chat": {"id": user.id, "type": "private"}, **content}  # fmt: skip
            assert post(url, {"update_id": update_id, "message": message}, WEBHOOK_SECRET) == status

        # Forged calls, one carrying a near miss of the secret; then a learner's first steps.
        assert post(url, {"update_id": 1}, WEBHOOK_SECRET[:-1]) == 401
        assert post(url, {"update_id": 2}, None) == 401
        send(3, text="/start", entities=[{"type": "bot_command", "offset": 0, "length": 6}])
        user.wait_sent(1)
        # A failure path: Telegram answers 500, the handler fails and aiogram logs the error with its traceback.
        tg.fail("sendMessage")
        send(4, 500, text="/help", entities=[{"type": "bot_command", "offset": 0, "length": 5}])  # Telegram retries
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


def test_secrets_never_reach_traces_dead_letters_or_the_bots_log(
    stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn, tmp_path: Path
) -> None:
    """The bot as its own process with tracing on, through failure paths: a Telegram file download that fails (its
    error names the URL `/file/bot<token>/...`), a malformed feedback event (a dead letter), a publish to a broker
    that is gone. Every span exported, every dead letter and the whole log are searched for each secret."""
    from confluent_kafka import Producer

    from control.harness.answer_job import speech_ogg
    from control.harness.telegram import onboard
    from control.stack.bot import BotPart
    from speech_coach.contracts import DeadLetter, Topic, decode
    from speech_coach.kafka import producer_config, topic_name
    from speech_coach.tools import find_ffmpeg
    from tests.bot_harness import read_topic
    from tests.otlp_collector import OtlpCollector

    collector = OtlpCollector().start()
    pg_url = pg_database.replace("postgresql://postgres@", "postgresql://postgres:pg-PASSW0RD-secret@")
    base = bot_settings(stack.settings, pg_url, s3_bucket, tg)
    settings: Settings = base.model_copy(
        update={
            "stack": base.stack.model_copy(update={"state_dir": tmp_path / "state"}),
            "openai": base.openai.model_copy(update={"api_key": SecretStr("sk-test-OPENAI-secret-0123456789")}),
            "privacy": base.privacy.model_copy(update={"pseudonym_key": SecretStr("pseudonym-KEY-secret-" + "9" * 20)}),
            "telemetry": base.telemetry.model_copy(update={"otlp_endpoint": collector.url, "sample_ratio": 1.0}),
            "log": base.log.model_copy(update={"level": "DEBUG", "json_output": True}),
        }
    )
    secrets = settings.secret_values()
    assert TOKEN in secrets and len(secrets) >= 4
    bot = BotPart(settings)
    try:
        bot.spawn()
        bot.wait_healthy(90)
        user = onboard(tg, "Job interview", timeout=60)
        answer, _speech = speech_ogg(
            "I would describe myself as a calm and careful engineer.", find_ffmpeg(settings).executable
        )
        # 1. The download fails: the bot refunds the answer and tells the learner.
        tg.fail("download", times=5)
        user.voice(answer, 4)
        tg.wait_for(
            lambda calls: any("could not be sent for analysis" in str(c.params.get("text", "")) for c in calls), 60
        )
        # 2. A malformed feedback event: the bot's consumer turns it into a dead letter.
        producer = Producer(producer_config(settings))
        producer.produce(topic_name(settings, Topic.FEEDBACK), key=b"x", value=b'{"event_type": "feedback_result"}')
        assert producer.flush(15) == 0
        letters = [decode(Topic.DEAD_LETTERS, v) for v in read_topic(settings, Topic.DEAD_LETTERS, 1, timeout=60)]
        assert letters and all(isinstance(d, DeadLetter) for d in letters)
    finally:
        bot.stop()  # SIGTERM: the bot flushes its spans on the way out
        collector.stop()
    spans = collector.received()
    failed = [s for s in spans if s.name == "bot.store_audio" and any(name == "exception" for name, _ in s.events)]
    assert failed, f"the failed download left no exception on a span: {sorted({s.name for s in spans})}"
    message = dict(failed[0].events)["exception"].get("exception.message", "")
    assert "/file/bot***/" in message, message  # the URL is there, its token is not
    searched = {
        "spans": b"".join(collector.bodies).decode("utf-8", errors="replace"),
        "dead letters": "".join(
            d.model_dump_json() + base64.b64decode(d.payload_b64).decode(errors="replace") for d in letters
        ),
        "bot log": bot.log_file.read_text(errors="replace"),
    }
    leaks = {where: [s[:4] + "..." for s in secrets if s in text] for where, text in searched.items()}
    assert leaks == {"spans": [], "dead letters": [], "bot log": []}, f"secrets found: {leaks}"
