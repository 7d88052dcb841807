"""The whole learner path as separate real processes, for the fault suite and the load benchmark.

The bot (`python -m bot`, the real aiogram bot against the Telegram stand-in), the answer job (PyFlink, offline
engines) and the ingestion service, on servers of their own so each can be stopped and started: SeaweedFS (audio),
ClickHouse, and a Tansu broker keeping its log in a second SeaweedFS, as production Kafka does not depend on the
audio store. PostgreSQL is the caller's (a database of its own) or the pipeline's own.

Learners are simulated as in `speech-coach simulate`: espeak speech encoded as Telegram voice messages, but they
come in through Telegram: /start, language, consent, a question, a voice answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from pydantic import SecretStr

from control.harness.answer_job import ANSWER_45S
from control.harness.telegram import TOKEN, Call, TelegramStandIn, User, onboard
from control.stack import Stack
from control.stack.broker import BrokerPart
from control.stack.isolated import free_port_block, isolated_settings
from control.stack.objectstore import ObjectStorePart
from speech_coach.audio.tts import synthesize, to_ogg_opus, tone
from speech_coach.settings import (
    AnswersSettings,
    DagsterSettings,
    KafkaSettings,
    MetricsSettings,
    OpenAISettings,
    PostgresSettings,
    Settings,
    WarehouseSettings,
)
from speech_coach.tools import find_ffmpeg

TRACK = "TOEFL Task 1 (independent)"
# About 15 s of real English: long enough to be assessed, short enough to keep transcription cheap.
SPEECH = ANSWER_45S.split(" Second,")[0]
FEEDBACK_BUTTONS = ["Next", "Retry", "Menu"]
NOT_SENT = "could not be sent for analysis"


@dataclass
class Pipeline:
    settings: Settings
    stack: Stack  # S3, ClickHouse (and PostgreSQL unless given), ingestion, the answer job and the bot
    broker: BrokerPart
    broker_store: ObjectStorePart
    tg: TelegramStandIn
    learners: list[User] = field(default_factory=list)
    speech: tuple[bytes, int] = (b"", 0)
    noise: tuple[bytes, int] = (b"", 0)

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.settings.postgres_url) as conn:
            return conn.execute(query, params).fetchall()

    def onboard(self, count: int) -> None:
        self.learners += [onboard(self.tg) for _ in range(count)]


def restart(part: Any, timeout: float = 60) -> None:
    """Start a part that is not running and wait until it serves."""
    part.spawn()
    part.wait_healthy(timeout)
    part.after_start()


@contextmanager
def running_pipeline(
    root: Path,
    *,
    postgres_url: str | None = None,
    json_logs: bool = False,
    openai_url: str | None = None,
    otlp_endpoint: str = "",
    metrics: MetricsSettings | None = None,
    **bot: Any,
) -> Iterator[Pipeline]:
    """`openai_url`: the job transcribes and scores through the OpenAI API there (2 s timeout, 2 retries),
    falling back to the offline engines; unset: offline engines only. `otlp_endpoint`: every process exports its
    spans there. `metrics`: the windowed metrics job runs too, with these settings (another JVM, so off unless
    asked for)."""
    broker_settings = isolated_settings(root / "broker")
    broker_store, broker = ObjectStorePart(broker_settings), BrokerPart(broker_settings)
    tg = TelegramStandIn(TOKEN).start()
    ports = free_port_block(3)
    servers: dict[str, Any] = {"postgres": PostgresSettings(url=postgres_url)} if postgres_url else {}
    base = isolated_settings(
        root / "state",
        kafka=KafkaSettings(bootstrap_servers=broker_settings.kafka_bootstrap),
        dagster=DagsterSettings(enabled=False),
        metrics=(metrics or MetricsSettings(enabled=False)).model_copy(update={"health_port": free_port_block(1)}),
        warehouse=WarehouseSettings(ingest_health_port=ports, ingest_batch_timeout_s=0.5),
        **servers,
    )
    bot_values = {
        "token": TOKEN, "api_base_url": tg.url, "health_port": ports + 2, "feedback_group_id": "bot-pipeline",
    } | bot  # fmt: skip
    engines: dict[str, Any] = {}
    if openai_url:
        engines = {
            "transcription": base.transcription.model_copy(update={"engine": "openai"}),
            "feedback": base.feedback.model_copy(update={"engine": "openai"}),
            "openai": OpenAISettings(api_key=SecretStr("sk-test-standin"), base_url=openai_url, timeout_s=2,
                                     max_retries=2),
        }  # fmt: skip
    settings = base.model_copy(
        update=engines
        | {
            "answers": AnswersSettings(enabled=True, health_port=ports + 1),
            "bot": base.bot.model_validate(base.bot.model_dump() | bot_values),
            "flink": base.flink.model_copy(update={"checkpoint_interval_s": 2, "restart_delay_s": 2}),
            "log": base.log.model_copy(update={"json_output": json_logs}),
            "telemetry": base.telemetry.model_copy(update={"otlp_endpoint": otlp_endpoint}),
        }
    )
    platform = Stack(settings, platform=True)
    p = Pipeline(settings, platform, broker, broker_store, tg)
    try:
        restart(broker_store)
        restart(broker)
        platform.up()
        ffmpeg = find_ffmpeg(settings).executable
        speech = synthesize(SPEECH)
        p.speech = to_ogg_opus(speech, ffmpeg), round(speech.duration_s)
        p.noise = to_ogg_opus(tone(3.0), ffmpeg), 3  # no voice at all: rejected, refunded
        yield p
    finally:
        _stop(p)
        tg.stop()


def _stop(p: Pipeline) -> None:
    """Clients first, gracefully (as `stack down` does); then the servers side by side and briefly: their data is
    thrown away, and SeaweedFS alone would take 15 s to stop politely."""
    for part in reversed(p.stack.stoppable_platform_parts):
        part.stop()

    def broker_then_store() -> None:
        p.broker.stop(timeout=5)
        p.broker_store.stop(timeout=2)

    with ThreadPoolExecutor(max_workers=3) as pool:
        for done in [pool.submit(broker_then_store), pool.submit(p.stack.s3.stop, 2),
                     pool.submit(p.stack.clickhouse.stop, 5)]:  # fmt: skip
            done.result()
    p.stack.down()  # whatever is left (the PostgreSQL it started, if any)


def is_ack(call: Call) -> bool:
    return call.method == "sendMessage" and "Answer received" in str(call.params.get("text", ""))


def is_feedback(call: Call) -> bool:
    """The last message of a delivered feedback or rejection: the one with Next / Retry / Menu."""
    rows = (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
    return call.method == "sendMessage" and [b["text"] for row in rows for b in row] == FEEDBACK_BUTTONS


def ask_and_answer(user: User, audio: tuple[bytes, int], timeout: float = 30) -> None:
    before = len(user.sent())
    user.press(TRACK)
    user.wait_sent(before + 1, timeout=timeout)
    user.voice(*audio)


def outcome_messages(user: User) -> tuple[int, int]:
    """(feedback or rejection deliveries, "not sent" replies) the learner received."""
    sent = user.sent()
    return sum(is_feedback(c) for c in sent), sum(NOT_SENT in str(c.params.get("text", "")) for c in sent)


def wait_feedback_count(user: User, count: int, timeout: float) -> float:
    """Wait until the learner has `count` feedback deliveries; returns when (monotonic)."""
    user.tg.wait_for(lambda _c: outcome_messages(user)[0] >= count, timeout)
    return time.monotonic()
