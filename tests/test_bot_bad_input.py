"""Bad input to the bot and what it must do with it: an update whose handling crashed, tampered callback data,
unicode and the longest texts Telegram delivers, malformed feedback events, and personal data that must never
be stored. The real bot against the Telegram stand-in and the test stack's servers (docs/reliability.md)."""

from __future__ import annotations

import base64
import time
import uuid

import pytest
from confluent_kafka import Producer

from control.harness.telegram import BOT_USER, TelegramStandIn, User
from control.stack import Stack
from speech_coach.contracts.events import DeadLetter, decode_as
from speech_coach.contracts.topics import Topic
from speech_coach.kafka import producer_config, topic_name
from speech_coach.settings import Settings
from tests.bot_harness import ADMIN_ID, RunningBot, bot_settings, read_topic, rows
from tests.test_bot_ops import post

pytestmark = pytest.mark.stack

# Right-to-left override, zero-width joiner emoji, combining marks, astral CJK, HTML and entity look-alikes.
UNICODE = '\u202eevil\u202c 👩\u200d💻 e\u0301\u0301 𠜎𠜱 <b>&amp; "quotes" \ufeff'


def onboard(tg: TelegramStandIn, **user: object) -> User:
    learner = User(tg, **user)  # type: ignore[arg-type]
    learner.text("/start")
    learner.wait_sent(1)
    learner.press("English")
    learner.wait_sent(2)
    learner.press("I agree")
    learner.wait_sent(3)
    return learner


def tap(user: User, data: str) -> str:
    """A callback query with any data, as a modified client can send; returns its id."""
    query_id = uuid.uuid4().hex
    message = {"message_id": 1, "date": int(time.time()), "from": BOT_USER, "chat": {"id": user.id, "type": "private"},
               "text": "..."}  # fmt: skip
    user.tg.inject({"callback_query": {"id": query_id, "from": user.user, "message": message,
                                       "chat_instance": str(user.id), "data": data}})  # fmt: skip
    return query_id


def answered(tg: TelegramStandIn, query_id: str) -> bool:
    return any(c.method == "answerCallbackQuery" and c.params["callback_query_id"] == query_id for c in tg.calls)


def test_an_update_whose_handling_crashed_is_handled_when_redelivered(
    stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn
) -> None:
    # A webhook, because there the test can deliver the same update again, as Telegram does after a failure.
    settings = bot_settings(stack.settings, pg_database, s3_bucket, tg, webhook_url="https://coach.example/tg",
                            webhook_secret="s3cret-webhook-token_2")  # fmt: skip
    bot = RunningBot(settings).start()
    try:
        url = f"http://127.0.0.1:{settings.bot.webhook_port}/tg"
        user = User(tg)
        update = {"update_id": 7001, "message": {"message_id": 1, "date": int(time.time()), "text": "/start",
                  "entities": [{"type": "bot_command", "offset": 0, "length": 6}], "from": user.user,
                  "chat": {"id": user.id, "type": "private"}}}  # fmt: skip
        tg.fail("sendMessage")  # the /start handler crashes after creating the learner, before replying
        # Answered after the handler ran: a 500 is what makes Telegram send the update again.
        assert post(url, update, "s3cret-webhook-token_2") == 500
        tg.wait_for(lambda calls: any(c.method == "sendMessage (failed)" for c in calls))
        assert rows(settings, "SELECT count(*) FROM processed_updates") == [(0,)]
        # Redelivered, as Telegram does after a 500: handled this time, and answered once it was.
        assert post(url, update, "s3cret-webhook-token_2") == 200
        assert "Choose your interface language" in user.wait_sent(1)[0].params["text"]
        tg.wait_for(lambda _c: rows(settings, "SELECT update_id FROM processed_updates") == [(7001,)])
        assert rows(settings, "SELECT count(*) FROM learners") == [(1,)]  # the repeat created nothing twice
        assert post(url, update, "s3cret-webhook-token_2") == 200  # once handled, a redelivery is skipped
        time.sleep(2)
        assert len(user.sent()) == 1
    finally:
        bot.stop()


def test_tampered_callback_data_changes_nothing(
    running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings
) -> None:
    other = onboard(tg)
    user = onboard(tg)
    before = rows(bot_env, "SELECT id, language, repetition, reminders, research_consent, transcription_temperature "
                           "FROM learners ORDER BY id")  # fmt: skip
    ledger = rows(bot_env, "SELECT learner_id, delta FROM credit_ledger ORDER BY id")
    replies = {
        "retry:no-such-question": "Choose what to practise",
        "buy:100000": "This pack is no longer available",
    }
    silent = ["practice:../../admin", "set:balance:999", "set:temperature:9.9", "set:is_admin:on", "lang:xx:1",
              "bcast:1", "erase:maybe", "erase", "x" * 300, "", UNICODE, "menu:extra:fields"]  # fmt: skip
    n = len(user.sent())
    for i, (data, expected) in enumerate(replies.items()):
        query = tap(user, data)
        assert expected in user.wait_sent(n + i + 1)[-1].params["text"], data
        assert answered(tg, query)
    queries = [tap(user, data) for data in silent]
    # Every query is answered (no endless spinner), and the malformed ones change nothing anywhere.
    tg.wait_for(lambda _c: all(answered(tg, q) for q in queries))
    time.sleep(1)
    assert len(user.sent()) <= n + len(replies) + 1  # at most the menu for "menu:..."
    assert len(other.sent()) == 3  # no broadcast reached anyone
    assert rows(bot_env, "SELECT id, language, repetition, reminders, research_consent, transcription_temperature "
                         "FROM learners ORDER BY id") == before  # fmt: skip
    assert rows(bot_env, "SELECT learner_id, delta FROM credit_ledger ORDER BY id") == ledger
    assert read_topic(bot_env, Topic.DELETION_REQUESTS, 1, timeout=3) == []


def test_unicode_and_the_longest_texts(running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings) -> None:
    user = onboard(tg)
    longest = (UNICODE * 200)[:4096]  # Telegram delivers at most 4096 characters
    user.text(longest)
    assert "Written answers are not accepted" in user.wait_sent(4)[-1].params["text"]
    user.text(f"/start {UNICODE}")  # a deep-link payload nobody sent out
    assert "Welcome back" in user.wait_sent(5)[-1].params["text"]

    admin = onboard(tg, user_id=ADMIN_ID)
    admin.text("/broadcast")
    admin.wait_sent(4)
    admin.text(longest)
    # Too long for a heading in the same message: the preview comes in two (one message was refused before).
    heading, preview = admin.wait_sent(6)[-2:]
    assert heading.params["text"] == "Preview:" and "Send" in str(preview.params["reply_markup"])
    admin.press("Send")
    assert "Broadcast sent to 2 of 2" in admin.wait_sent(8)[-1].params["text"]
    assert user.sent()[-1].params["text"] == longest.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_malformed_feedback_events_become_dead_letters_and_delivery_goes_on(
    running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings
) -> None:
    topic = topic_name(bot_env, Topic.FEEDBACK)
    bad = {
        b"\xff\xfe not json": "contract.not_json",
        b"[1, 2]": "contract.not_object",
        b'{"event_type": "feedback_result", "schema_version": 2}': "contract.unsupported_version",
        b'{"event_type": "raw_voice_answer", "schema_version": 1}': "contract.wrong_type",
        b'{"event_type": "feedback_result", "schema_version": 1, "answer_id": "x"}': "contract.invalid",
    }
    producer = Producer(producer_config(bot_env))
    for payload in bad:
        producer.produce(topic, key=b"k", value=payload)
    assert producer.flush(15) == 0
    letters = [decode_as(DeadLetter, v) for v in read_topic(bot_env, Topic.DEAD_LETTERS, len(bad), timeout=30)]
    assert sorted((base64.b64decode(d.payload_b64), d.reason) for d in letters) == sorted(bad.items())
    assert {(d.source_topic, d.stage) for d in letters} == {(topic, "bot.feedback")}
    assert all(d.source_offset is not None and d.detail for d in letters)
    # The consumer did not stop at them: the bot still answers and still reads feedback.
    user = onboard(tg)
    assert running_bot.app is not None
    assert running_bot.app.metrics.feedback.labels("invalid")._value.get() == len(bad)
    assert len(user.sent()) == 3


def test_groups_are_served_nothing_and_their_buttons_change_nothing(
    running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings
) -> None:
    """In a group, feedback and transcripts would reach every member and anyone could press another's buttons: the
    bot serves private chats only and says so politely; nothing is stored for anyone."""
    member = User(tg)
    group = {"id": -1001234567, "type": "supergroup", "title": "Study group"}

    def in_group(**content: object) -> None:
        tg.inject({"message": {"message_id": 7, "date": 1700000000, "from": member.user, "chat": group, **content}})

    in_group(text="/start", entities=[{"type": "bot_command", "offset": 0, "length": 6}])
    (note,) = tg.wait_sent(group["id"], 1)
    assert "private chats only" in note.params["text"]
    in_group(text="hello everyone")  # not a command: not answered
    anonymous = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
    tg.inject({"message": {"message_id": 8, "date": 1700000000, "from": anonymous, "sender_chat": group,
                           "chat": group, "text": "/practice",
                           "entities": [{"type": "bot_command", "offset": 0, "length": 9}]}})  # fmt: skip
    # A button under a message in the group, pressed by a member (a settings toggle, a deletion confirmation).
    for data in ("settings:reminders", "delete:1"):
        query_id = uuid.uuid4().hex
        tg.inject({"callback_query": {"id": query_id, "from": member.user, "chat_instance": "g", "data": data,
                                      "message": {"message_id": 9, "date": 1700000000, "chat": group}}})  # fmt: skip
        answered = tg.wait_for(
            lambda calls, q=query_id: next(
                (c for c in calls if c.method == "answerCallbackQuery" and c.params["callback_query_id"] == q), None
            )
        )
        assert "private chats only" in answered.params.get("text", "")
    tg.wait_sent(group["id"], 2)  # the anonymous admin's command got the note too
    time.sleep(1)
    assert len(tg.sent(group["id"])) == 2
    assert rows(bot_env, "SELECT count(*) FROM learners") == [(0,)]
    assert rows(bot_env, "SELECT count(*) FROM processed_updates") == [(0,)]


def test_a_file_larger_than_telegram_said_is_cut_off_at_the_limit_while_it_streams(
    stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn
) -> None:
    from speech_coach.s3 import s3_client
    from tests.test_bot import ask_question, onboard

    limit = 1024 * 1024
    settings = bot_settings(stack.settings, pg_database, s3_bucket, tg, max_file_bytes=limit)
    bot = RunningBot(settings).start()
    try:
        user = onboard(tg)
        ask_question(user)
        huge = b"OggS" + bytes(40 * 1024 * 1024)  # 40 MB behind a voice message that claims 30 KB
        user.voice(huge, 10, file_size=30_000)
        reply = user.wait_sent(6, timeout=60)[-1].params["text"]
        assert "too large" in reply and "1 MB" in reply
        (path,) = tg.served
        # Cut off at the limit: what the socket buffers held besides, not the 40 MB.
        assert tg.served[path] < 12 * limit, f"{tg.served[path]} bytes read of {len(huge)}"
        assert rows(settings, "SELECT status FROM answers") == [("failed",)]
        assert rows(settings, "SELECT reason, delta FROM credit_ledger ORDER BY id")[-1] == ("refund", 1)
        assert s3_client(settings).list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
    finally:
        bot.stop()
