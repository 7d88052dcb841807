"""Paid feedback reaches the learner: the feedback consumer outlives errors, Telegram errors are retried as the
Bot API asks, a multi-part feedback resumes where it stopped, and feedback that cannot be delivered is refunded
once and kept for /last. The real bot against the Telegram stand-in, with the test stack's servers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import psycopg
import pytest

from control.harness.telegram import TelegramStandIn, User
from control.stack import Stack
from speech_coach.contracts.events import DeadLetter, RawVoiceAnswer, decode_as
from speech_coach.contracts.topics import Topic
from speech_coach.settings import Settings
from tests.bot_harness import RunningBot, bot_settings, publish, read_topic, rows
from tests.test_bot import ask_question, feedback_for, has_buttons, http_get, onboard, voice_ogg, wait_feedback

pytestmark = pytest.mark.stack
__all__ = ["voice_ogg"]  # the module fixture, shared

LONG = " ".join(["I prefer studying alone because I can focus and plan my own time."] * 90)


@pytest.fixture
def quick_env(stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn) -> Settings:
    # A one-second budget in line and a sweep every second: retries the tests can wait for.
    return bot_settings(stack.settings, pg_database, s3_bucket, tg, delivery_wait_s=1.0, recovery_interval_s=1.0)


@pytest.fixture
def quick_bot(quick_env: Settings) -> Iterator[RunningBot]:
    bot = RunningBot(quick_env).start()
    yield bot
    bot.stop()


def answered(user: User, settings: Settings, voice: tuple[bytes, int]) -> RawVoiceAnswer:
    ask_question(user)
    user.voice(*voice)
    user.wait_sent(5)
    return decode_as(RawVoiceAnswer, read_topic(settings, Topic.RAW_ANSWERS, 1)[0])


def feedback_texts(user: User, after: int) -> list[str]:
    return [str(c.params["text"]) for c in user.sent()[after:]]


def health(settings: Settings, path: str) -> tuple[int, dict[str, object]]:
    status, body = http_get(f"http://127.0.0.1:{settings.bot.health_port}{path}")
    return status, json.loads(body)


def test_the_feedback_consumer_survives_a_database_error_and_the_health_checks_show_it(
    quick_bot: RunningBot, tg: TelegramStandIn, quick_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    user = onboard(tg)
    raw = answered(user, quick_env, voice_ogg)
    # A real database error on every feedback event: the table it writes is gone for a while.
    with psycopg.connect(quick_env.postgres_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE deliveries RENAME TO deliveries_away")
    try:
        publish(quick_env, feedback_for(raw))
        _, ready = tg.wait_for(lambda _c: (r := health(quick_env, "/readyz"))[0] == 503 and r, 30)
        assert "UndefinedTable" in str(ready["checks"]["feedback_consumer"])  # type: ignore[index]
        assert health(quick_env, "/healthz")[0] == 200  # alive: a restart would not help, so none is asked for
        assert len(user.sent()) == 5
    finally:
        with psycopg.connect(quick_env.postgres_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE deliveries_away RENAME TO deliveries")
    messages = wait_feedback(user, after=5, timeout=60)  # the same event, read again: nothing was lost
    assert "Transcript" in "\n".join(str(m.params["text"]) for m in messages)
    tg.wait_for(lambda _c: health(quick_env, "/readyz")[0] == 200, 20)
    tg.wait_for(lambda _c: rows(quick_env, "SELECT status FROM answers") == [("delivered",)], 10)

    # Liveness is a heartbeat, not a constant "ok": a consumer that ended fails /healthz.
    app = quick_bot.app
    assert app is not None and app.consumer is not None and quick_bot.loop is not None
    quick_bot.loop.call_soon_threadsafe(app.consumer.stop)
    _, body = tg.wait_for(lambda _c: (r := health(quick_env, "/healthz"))[0] == 503 and r, 20)
    assert str(body["checks"]["feedback_consumer"]).startswith("stopped")  # type: ignore[index]


def test_telegram_errors_are_retried_and_the_answer_is_delivered_only_once_sent(
    quick_bot: RunningBot, tg: TelegramStandIn, quick_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    user = onboard(tg)
    raw = answered(user, quick_env, voice_ogg)
    tg.outage(["sendMessage"], 6)  # longer than a delivery waits in line: the retry sweep finishes it
    publish(quick_env, feedback_for(raw))
    tg.wait_for(lambda calls: sum(c.method == "sendMessage (failed)" for c in calls) >= 2, 20)
    # Not delivered while nothing has arrived; the scores are recorded already.
    assert rows(quick_env, "SELECT status, overall_score FROM answers") == [("scored", 3.0)]
    assert rows(quick_env, "SELECT status, parts_sent FROM deliveries") == [("sending", 0)]
    wait_feedback(user, after=5, timeout=60)
    tg.wait_for(lambda _c: rows(quick_env, "SELECT status FROM answers") == [("delivered",)], 10)
    assert rows(quick_env, "SELECT sum(delta) FROM credit_ledger") == [(2,)]  # charged once, not refunded

    # 429: the next try waits for retry_after.
    raw2 = answered_again(user, quick_env, voice_ogg, raw)
    before, mark = len(user.sent()), time.monotonic()
    tg.fail("sendMessage", 1, code=429, retry_after=3)
    publish(quick_env, feedback_for(raw2))
    wait_feedback(user, after=before, timeout=60)
    failed = [c for c in tg.calls if c.method == "sendMessage (failed)" and c.at > mark]
    sent = [c for c in user.sent()[before:] if c.at > mark]
    assert len(failed) == 1 and sent[0].at - failed[0].at >= 3.0


def test_a_refused_bot_token_is_retried_and_refunds_nothing(
    quick_bot: RunningBot, tg: TelegramStandIn, quick_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    # 401 means the bot's token was refused: the operator's to fix, no learner's. It used to be final, so one bad
    # token gave up and refunded every delivery that came due.
    user = onboard(tg)
    raw = answered(user, quick_env, voice_ogg)
    tg.fail("sendMessage", 2, code=401)
    publish(quick_env, feedback_for(raw))
    wait_feedback(user, after=5, timeout=60)
    tg.wait_for(lambda _c: rows(quick_env, "SELECT status FROM answers") == [("delivered",)], 10)
    assert sum(c.method == "sendMessage (failed)" for c in tg.calls) == 2
    assert rows(quick_env, "SELECT sum(delta) FROM credit_ledger") == [(2,)]  # charged once, not refunded


def answered_again(user: User, settings: Settings, voice: tuple[bytes, int], first: RawVoiceAnswer) -> RawVoiceAnswer:
    before = len(user.sent())
    user.press("Next")
    user.wait_sent(before + 1)
    user.voice(*voice)
    user.wait_sent(before + 2)
    raws = [decode_as(RawVoiceAnswer, r) for r in read_topic(settings, Topic.RAW_ANSWERS, 2)]
    (second,) = [r for r in raws if r.answer_id != first.answer_id]  # partitions keep no order between them
    return second


def test_a_multi_part_feedback_resumes_from_the_first_part_not_sent(
    quick_bot: RunningBot, tg: TelegramStandIn, quick_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    user = onboard(tg)
    raw = answered(user, quick_env, voice_ogg)
    tg.fail("sendMessage", 3, code=502, after=1)  # the first part goes out, the second fails three times
    publish(quick_env, feedback_for(raw, transcript=LONG))
    messages = wait_feedback(user, after=5, timeout=60)
    texts = [str(m.params["text"]) for m in messages]
    assert len(texts) >= 2 and len(set(texts)) == len(texts), "a part was sent twice"
    assert sum(c.method == "sendMessage (failed)" for c in tg.calls) == 3
    assert "Transcript" in "\n".join(texts) and has_buttons(messages[-1])
    done = [("sent", len(texts), len(texts))]
    tg.wait_for(lambda _c: rows(quick_env, "SELECT status, parts_sent, message_count FROM deliveries") == done, 10)


def test_undeliverable_feedback_is_refunded_once_and_kept_for_last(
    quick_bot: RunningBot, tg: TelegramStandIn, quick_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    user = onboard(tg)
    raw = answered(user, quick_env, voice_ogg)
    tg.blocked.add(user.id)  # the learner blocked the bot: Telegram refuses for good (403)
    result = feedback_for(raw)
    publish(quick_env, result)
    tg.wait_for(lambda _c: rows(quick_env, "SELECT status FROM deliveries") == [("failed",)], 30)
    assert rows(quick_env, "SELECT status FROM answers") == [("undelivered",)]
    publish(quick_env, result)  # redelivered: not refunded twice
    tg.wait_for(lambda _c: len(read_topic(quick_env, Topic.FEEDBACK, 2, timeout=5)) == 2)
    time.sleep(2)
    assert rows(quick_env, "SELECT reason, delta FROM credit_ledger ORDER BY id") == [
        ("starter", 3), ("answer", -1), ("refund", 1),
    ]  # fmt: skip

    tg.blocked.discard(user.id)  # unblocked: /last shows what never arrived
    before = len(user.sent())
    user.text("/last")
    messages = wait_feedback(user, after=before)
    whole = "\n".join(str(m.params["text"]) for m in messages)
    assert "Transcript" in whole and "Improved example answer" in whole


def test_a_delivery_the_bot_cannot_read_is_given_up_and_refunded_and_the_sweep_goes_on(
    quick_bot: RunningBot, tg: TelegramStandIn, quick_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    # A kept delivery that no longer decodes (written by a release with another contract version): retrying
    # cannot help. It used to raise in every sweep, stay 'sending' for ever and never be refunded.
    user = onboard(tg)
    raw = answered(user, quick_env, voice_ogg)
    tg.outage(["sendMessage"], 4)  # the delivery is left to the sweep
    publish(quick_env, feedback_for(raw))
    tg.wait_for(lambda _c: rows(quick_env, "SELECT attempts > 0 FROM deliveries") == [(True,)], 20)
    with psycopg.connect(quick_env.postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE deliveries SET result = jsonb_set(result, '{schema_version}', '99')")
    done = [("failed", "undelivered")]
    tg.wait_for(lambda _c: rows(quick_env, "SELECT d.status, a.status FROM deliveries d JOIN answers a "
                                           "ON a.id = d.answer_id") == done, 30)  # fmt: skip
    ((error,),) = rows(quick_env, "SELECT last_error FROM deliveries")
    assert error.startswith("ContractError: ") and "I prefer" not in error
    assert rows(quick_env, "SELECT reason, delta FROM credit_ledger ORDER BY id") == [
        ("starter", 3), ("answer", -1), ("refund", 1),
    ]  # fmt: skip
    assert health(quick_env, "/readyz")[0] == 200


def test_feedback_postgresql_cannot_store_is_a_dead_letter_and_the_events_behind_it_go_on(
    quick_bot: RunningBot, tg: TelegramStandIn, quick_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    # The contract allows a NUL character, PostgreSQL's JSON does not: the event used to be read again for ever,
    # and every event behind it on its partition waited.
    user = onboard(tg)
    raw = answered(user, quick_env, voice_ogg)
    publish(quick_env, feedback_for(raw, transcript="I prefer studying\x00 alone."))
    publish(quick_env, feedback_for(raw))  # behind it on the same partition (same answer, same key)
    messages = wait_feedback(user, after=5, timeout=60)
    assert "I prefer studying alone because" in "\n".join(str(m.params["text"]) for m in messages)
    (letter,) = [decode_as(DeadLetter, v) for v in read_topic(quick_env, Topic.DEAD_LETTERS, 1, timeout=30)]
    assert (letter.stage, letter.reason, letter.answer_id) == ("bot.feedback", "store.refused", raw.answer_id)
    assert "SQLSTATE 22" in letter.detail
    tg.wait_for(lambda _c: rows(quick_env, "SELECT status FROM answers") == [("delivered",)], 10)


def test_last_without_feedback(running_bot: RunningBot, tg: TelegramStandIn) -> None:
    user = onboard(tg)
    user.text("/last")
    assert "No feedback yet" in user.wait_sent(4)[-1].params["text"]
