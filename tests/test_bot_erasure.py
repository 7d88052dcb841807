"""Erasure finishes whatever fails on the way, and nothing published or stored after it survives it. The real bot
against the Telegram stand-in, with the test stack's PostgreSQL, Kafka and S3."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from control.harness.telegram import TelegramStandIn
from control.stack import Stack
from speech_coach.contracts.events import LearnerDeletionRequest, RawVoiceAnswer, decode_as
from speech_coach.contracts.topics import Topic
from speech_coach.s3 import s3_client
from speech_coach.settings import Settings
from tests.bot_harness import RunningBot, bot_settings, read_topic, rows
from tests.test_bot import ask_question, onboard, voice_ogg

pytestmark = pytest.mark.stack
__all__ = ["voice_ogg"]  # the module fixture, shared


@pytest.fixture
def quick_env(stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn) -> Settings:
    return bot_settings(stack.settings, pg_database, s3_bucket, tg, recovery_interval_s=1.0)


@pytest.fixture
def quick_bot(quick_env: Settings) -> Iterator[RunningBot]:
    bot = RunningBot(quick_env).start()
    yield bot
    bot.stop()


def learner_rows(settings: Settings, learner_id: uuid.UUID) -> dict[str, int]:
    tables = ("answers", "consents", "question_history", "credit_ledger")
    counts = {t: rows(settings, f"SELECT count(*) FROM {t} WHERE learner_id = %s", learner_id)[0][0] for t in tables}
    return counts | {"learners": rows(settings, "SELECT count(*) FROM learners WHERE id = %s", learner_id)[0][0]}


def test_an_erasure_that_fails_half_way_is_finished_and_the_learner_told(
    quick_bot: RunningBot, tg: TelegramStandIn, quick_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    user = onboard(tg)
    ask_question(user)
    user.voice(*voice_ogg)
    user.wait_sent(5)
    raw = decode_as(RawVoiceAnswer, read_topic(quick_env, Topic.RAW_ANSWERS, 1)[0])
    learner_id = uuid.UUID(raw.learner_id)
    s3 = s3_client(quick_env)
    # PostgreSQL fails the erasure after the deletion event went out: a table it deletes from is away.
    with psycopg.connect(quick_env.postgres_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE erased_accounts RENAME TO erased_accounts_away")
    try:
        user.text("/delete_my_data")
        user.wait_sent(6)
        user.press("Yes, delete everything")
        assert "being deleted" in user.wait_sent(7)[-1].params["text"]
        time.sleep(3)  # the sweep tries again, and fails again
        (error,) = rows(quick_env, "SELECT last_error FROM erasures WHERE learner_id = %s", learner_id)[0]
        assert "UndefinedTable" in error
        assert learner_rows(quick_env, learner_id)["learners"] == 1  # nothing half-erased: one transaction
    finally:
        with psycopg.connect(quick_env.postgres_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE erased_accounts_away RENAME TO erased_accounts")
    assert "All your data has been deleted" in user.wait_sent(8, timeout=30)[-1].params["text"]
    assert learner_rows(quick_env, learner_id) == dict.fromkeys(
        ("answers", "consents", "question_history", "credit_ledger", "learners"), 0
    )
    assert s3.list_objects_v2(Bucket=raw.audio.bucket).get("KeyCount", 0) == 0
    assert rows(quick_env, "SELECT count(*) FROM erasures") == [(0,)]  # and the chat id it kept, with it
    events = read_topic(quick_env, Topic.DELETION_REQUESTS, 2, timeout=5)
    assert [decode_as(LearnerDeletionRequest, e).learner_id for e in events] == [raw.learner_id]  # once
    time.sleep(2)
    assert len(user.sent()) == 8


def test_an_answer_on_its_way_during_an_erasure_is_neither_published_nor_kept(
    quick_bot: RunningBot, tg: TelegramStandIn, quick_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    user = onboard(tg)
    ask_question(user)
    tg.file_delay_s = 6  # the download is slow: the learner erases their data meanwhile
    user.voice(*voice_ogg)
    user.wait_sent(5)  # "Answer received"
    user.text("/delete_my_data")
    user.wait_sent(6)
    user.press("Yes, delete everything")
    assert "All your data has been deleted" in user.wait_sent(7)[-1].params["text"]
    tg.wait_for(lambda calls: any(c.method == "getFile" for c in calls))
    time.sleep(8)  # the download finishes
    assert read_topic(quick_env, Topic.RAW_ANSWERS, 1, timeout=3) == []  # nothing published for an erased learner
    assert s3_client(quick_env).list_objects_v2(Bucket=quick_env.s3.audio_bucket).get("KeyCount", 0) == 0
    assert rows(quick_env, "SELECT count(*) FROM answers") == [(0,)]
