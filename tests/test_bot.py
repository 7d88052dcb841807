"""The learner bot end to end: the real aiogram bot against the Telegram stand-in, with real PostgreSQL,
Kafka and S3 from the test stack, and real OGG/Opus voice answers synthesized with espeak-ng."""

from __future__ import annotations

import json
import math
import os
import re
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot import repo
from control.harness.telegram import TelegramStandIn, User, check_html, transcript
from control.stack import Stack
from speech_coach import rejections
from speech_coach.audio.tts import synthesize, to_ogg_opus
from speech_coach.contracts.events import (
    FeedbackResult,
    KeyMetrics,
    LearnerDeletionRequest,
    RawVoiceAnswer,
    ResultStatus,
    RubricScore,
    TaskType,
    Track,
    decode_as,
)  # fmt: skip
from speech_coach.contracts.topics import Topic
from speech_coach.i18n import read_catalog
from speech_coach.rejections import RejectionReason
from speech_coach.s3 import s3_client
from speech_coach.settings import Settings
from speech_coach.tools import find_ffmpeg
from tests.bot_harness import ADMIN_ID, RunningBot, bot_settings, publish, read_topic, rows

pytestmark = pytest.mark.stack

ANSWER_TEXT = (
    'I prefer studying alone because I can focus better. <break time="700ms"/> For example, last semester '
    "I prepared for my exams in the library and my grades improved."
)


@pytest.fixture(scope="module")
def voice_ogg(stack: Stack) -> tuple[bytes, int]:
    pcm = synthesize(ANSWER_TEXT, ssml=True)
    return to_ogg_opus(pcm, find_ffmpeg(stack.settings).executable), math.ceil(pcm.duration_s)


def onboard(tg: TelegramStandIn, language_code: str = "en", choose: str = "English") -> User:
    user = User(tg, language_code=language_code)
    user.text("/start")
    user.wait_sent(1)
    user.press(choose)
    user.wait_sent(2)
    user.press(re.compile("^(I agree|Я согласен)"))
    user.wait_sent(3)
    return user


def ask_question(user: User, track: str = "TOEFL Task 1 (independent)") -> str:
    before = len(user.sent())
    user.press(track)
    return str(user.wait_sent(before + 1)[-1].params["text"])


def feedback_for(raw: RawVoiceAnswer, **overrides: object) -> FeedbackResult:
    values: dict[str, object] = dict(
        answer_id=raw.answer_id, learner_id=raw.learner_id, question_id=raw.question_id, track=raw.track,
        task_type=raw.task_type, status=ResultStatus.OK, transcript="I prefer studying alone because I can focus.",
        rubric=[RubricScore(criterion="Delivery", score=3, max_score=4, comment="Clear & steady <pace>"),
                RubricScore(criterion="Language use", score=3, max_score=4),
                RubricScore(criterion="Topic development", score=2, max_score=4, comment="Add a second reason")],
        overall_score=3.0, feedback="A clear answer with one good example.",
        strengths=["Clear thesis", "Relevant example"], suggestions=["Use linking words", "Add a second reason"],
        improved_answer="I prefer studying alone, mainly because I can concentrate without distractions.",
        metrics=KeyMetrics(words_per_minute=132.5, pause_count=2, mean_pause_s=0.7, lexical_diversity=0.81),
        answered_at=datetime.now(UTC),
    )  # fmt: skip
    return FeedbackResult(**(values | overrides))  # type: ignore[arg-type]


def has_buttons(call: object) -> bool:
    markup = call.params.get("reply_markup")  # type: ignore[attr-defined]
    return bool(markup) and ("Next" in str(markup) or "Дальше" in str(markup))


def wait_feedback(user: User, after: int, timeout: float = 30) -> list:  # type: ignore[type-arg]
    """The messages sent after index `after`, once the one carrying Next/Retry/Menu arrived."""
    return user.tg.wait_for(
        lambda _c: (sent := user.sent()[after:]) and any(has_buttons(c) for c in sent) and sent, timeout
    )


def http_get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback test server
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_conversation_end_to_end(
    running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    # Onboarding: Telegram says German, which the bot does not speak: English until the learner chooses.
    user = User(tg, language_code="de")
    user.text("/start")
    assert "Choose your interface language" in user.wait_sent(1)[-1].params["text"]
    user.press("English")
    notice = user.wait_sent(2)[-1].params["text"]
    assert "What we store" in notice and "/delete_my_data" in notice and "365 days" in notice
    # No answer is processed before consent.
    audio, seconds = voice_ogg
    user.voice(audio, seconds)
    assert "What we store" in user.wait_sent(3)[-1].params["text"]
    user.press("I agree")
    welcome = user.wait_sent(4)[-1]
    assert "3 free credits" in welcome.params["text"]

    question = ask_question(user)
    assert "TOEFL Task 1" in question and "Preparation: 15 s · Speaking: 45 s" in question

    user.voice(audio, seconds)
    ack = user.wait_sent(6)[-1].params["text"]
    assert "Answer received" in ack and "Analysing" in ack

    (raw_bytes,) = read_topic(bot_env, Topic.RAW_ANSWERS, 1)
    raw = decode_as(RawVoiceAnswer, raw_bytes)
    assert raw.task_type.value == "toefl_independent" and raw.speaking_time_s == 45
    assert raw.audio.duration_s == seconds and raw.audio.mime_type == "audio/ogg"
    assert raw.audio.key == f"audio/{raw.audio.sha256[:2]}/{raw.audio.sha256}.ogg"
    assert raw.telegram.chat_id == user.id and raw.question_sent_at <= raw.received_at
    assert str(user.id) not in raw.learner_id
    stored = s3_client(bot_env).get_object(Bucket=raw.audio.bucket, Key=raw.audio.key)["Body"].read()
    assert stored == audio and stored[:4] == b"OggS"
    assert rows(bot_env, "SELECT status FROM answers") == [("published",)]
    assert rows(bot_env, "SELECT reason, delta, balance_after FROM credit_ledger ORDER BY id") == [
        ("starter", 3, 3), ("answer", -1, 2),
    ]  # fmt: skip

    # Feedback long enough to need two messages.
    long_transcript = " ".join(["I prefer studying alone because I can focus and plan my own time."] * 90)
    publish(bot_env, feedback_for(raw, transcript=long_transcript))
    messages = wait_feedback(user, after=6)
    assert len(messages) >= 2
    texts = [str(m.params["text"]) for m in messages]
    for text in texts:
        visible, error = check_html(text)
        assert not error and visible <= 4096
    whole = "\n".join(texts)
    expected = ["Transcript", "Delivery: <b>3/4</b>", "Clear &amp; steady &lt;pace&gt;", "Strengths",
                "Relevant example", "Suggestions", "Improved example answer", "132 words per minute",
                "Pauses: 2 (average 0.7 s)", "Lexical diversity (MATTR): 0.81", "Overall score: <b>3</b>"]  # fmt: skip
    for part in expected:
        assert part in whole, part
    buttons = [b["text"] for row in messages[-1].params["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["Next", "Retry", "Menu"]
    assert "reply_markup" not in messages[0].params or messages[0].params["reply_markup"] is None
    done = [("delivered", 3.0, True)]  # once the last part is out
    tg.wait_for(lambda _c: rows(bot_env, "SELECT status, overall_score, word_count > 0 FROM answers") == done, 10)
    assert rows(bot_env, "SELECT sum(delta) FROM credit_ledger") == [(2,)]

    # Next: a different Task 1 question; /stats: a PNG chart; /balance.
    user.press("Next")
    nxt = str(user.wait_sent(len(user.sent()) + 1)[-1].params["text"])
    assert "TOEFL Task 1" in nxt and nxt != question
    user.text("/stats")
    photo = tg.wait_sent(user.id, 1, method="sendPhoto")[0]
    assert photo.files["photo"][:8] == b"\x89PNG\r\n\x1a\n" and "Average score: 3.0" in photo.params["caption"]
    user.text("/balance")
    assert "Your balance: 2 credits" in user.wait_sent(len(user.sent()) + 1)[-1].params["text"]

    if target := os.environ.get("BOT_TRANSCRIPT"):  # renders docs/learner-guide.md's example conversation
        Path(target).write_text(transcript(tg, user.id))

    health = bot_env.bot.health_port
    assert http_get(f"http://127.0.0.1:{health}/healthz")[0] == 200
    status, body = http_get(f"http://127.0.0.1:{health}/readyz")
    assert status == 200 and json.loads(body)["checks"] == {
        "postgres": "ok", "kafka": "ok", "feedback_consumer": "ok", "telegram_updates": "ok",
    }  # fmt: skip
    metrics = http_get(f"http://127.0.0.1:{health}/metrics")[1]
    assert 'bot_answers_total{outcome="published"} 1.0' in metrics
    assert 'bot_feedback_total{outcome="ok"} 1.0' in metrics


def nothing_written(settings: Settings, bucket: str) -> None:
    """No answer, no charge, no stored audio, no event."""
    assert rows(settings, "SELECT count(*) FROM answers") == [(0,)]
    assert rows(settings, "SELECT reason FROM credit_ledger") == [("starter",)]
    assert s3_client(settings).list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert read_topic(settings, Topic.RAW_ANSWERS, 1, timeout=3) == []


def test_every_refusal_in_the_learners_language(
    stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn, voice_ogg: tuple[bytes, int]
) -> None:
    settings = bot_settings(stack.settings, pg_database, s3_bucket, tg, max_file_bytes=100_000)
    bot = RunningBot(settings).start()
    try:
        user = onboard(tg, language_code="ru", choose="Русский")
        assert "Выберите, что тренировать" in user.last_text()
        assert "У вас 3 бесплатных кредита;" in user.last_text()  # the plural form for 3, not the one for 5
        audio, seconds = voice_ogg
        # Before any question: answer refused, pointing to the menu.
        user.voice(audio, seconds)
        assert "Сначала выберите вопрос" in user.wait_sent(5)[-2].params["text"]
        assert "TOEFL" in ask_question(user, "TOEFL, задание 1 (independent)")  # 45 s to speak
        n = len(user.sent())
        file_id, unique = tg.add_file(audio)
        cases = [
            ({"video": {"file_id": "v1", "file_unique_id": "v1u", "width": 10, "height": 10, "duration": 5}},
             "Видео не принимаются"),
            ({"video_note": {"file_id": "n1", "file_unique_id": "n1u", "length": 10, "duration": 5}},
             "Видео не принимаются"),
            ({"text": "I think studying alone is better."}, "Письменные ответы не принимаются"),
            ({"sticker": {"file_id": "s1", "file_unique_id": "s1u", "type": "regular", "width": 1, "height": 1,
                          "is_animated": False, "is_video": False}}, "Стикеры нельзя оценить"),
            ({"voice": {"file_id": file_id, "file_unique_id": unique, "duration": seconds, "mime_type": "audio/ogg",
                        "file_size": 5_000_000}}, "Файл слишком большой (4.8 МБ). Максимум — 0 МБ."),
            ({"voice": {"file_id": file_id, "file_unique_id": unique, "duration": 120, "mime_type": "audio/ogg",
                        "file_size": len(audio)}}, "Ваш ответ длится 120 с, а задание позволяет 45 с."),
            ({"document": {"file_id": file_id, "file_unique_id": unique, "mime_type": "audio/ogg",
                           "file_name": "answer.ogg"}}, "Не могу определить длительность записи"),
            ({"photo": [{"file_id": "p1", "file_unique_id": "p1u", "width": 1, "height": 1}]},
             "Ответьте голосовым сообщением"),
        ]  # fmt: skip
        for i, (content, expected) in enumerate(cases):
            user.message(**content)
            reply = user.wait_sent(n + i + 1)[-1].params
            assert expected in reply["text"], (content, reply["text"])
            assert reply["reply_parameters"]["message_id"]  # a reply to the refused message
        nothing_written(settings, s3_bucket)
        # The question is still open: a proper voice answer now goes through.
        user.voice(audio, seconds)
        assert "Ответ получен" in user.wait_sent(n + len(cases) + 1)[-1].params["text"]
        assert len(read_topic(settings, Topic.RAW_ANSWERS, 1)) == 1
    finally:
        bot.stop()


def test_duplicate_updates_and_feedback_are_handled_once(
    running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    user = onboard(tg)
    ask_question(user)
    audio, seconds = voice_ogg
    update = user.voice(audio, seconds)
    tg.inject(update)  # the same update redelivered (same update_id)
    tg.inject({k: v for k, v in update.items() if k != "update_id"})  # the same message in a new update
    user.wait_sent(5)
    raws = read_topic(bot_env, Topic.RAW_ANSWERS, 2, timeout=8)
    assert len(raws) == 1
    assert rows(bot_env, "SELECT count(*) FROM answers") == [(1,)]
    assert rows(bot_env, "SELECT reason, delta FROM credit_ledger ORDER BY id") == [("starter", 3), ("answer", -1)]
    assert len([c for c in user.sent() if "Answer received" in c.params["text"]]) == 1

    raw = decode_as(RawVoiceAnswer, raws[0])
    result = feedback_for(raw)
    publish(bot_env, result)
    publish(bot_env, result)  # redelivered event
    publish(bot_env, feedback_for(raw))  # the pipeline produced it twice (new event id)
    first = wait_feedback(user, after=5)
    assert len(read_topic(bot_env, Topic.FEEDBACK, 3)) == 3
    tg.wait_for(lambda _c: rows(bot_env, "SELECT count(*) FROM answers WHERE status='delivered'") == [(1,)])
    time.sleep(3)  # time for the duplicates to be consumed
    assert len(user.sent()) == 5 + len(first)
    assert rows(bot_env, "SELECT status FROM deliveries") == [("sent",)]
    assert rows(bot_env, "SELECT sum(delta) FROM credit_ledger") == [(2,)]


def test_rejected_answer_is_refunded_once(
    running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    user = onboard(tg)
    ask_question(user)
    user.voice(*voice_ogg)
    user.wait_sent(5)
    raw = decode_as(RawVoiceAnswer, read_topic(bot_env, Topic.RAW_ANSWERS, 1)[0])
    rejected = feedback_for(raw, status=ResultStatus.REJECTED, rejection_reason="audio.silent", transcript="",
                            rubric=[], overall_score=None, metrics=None)  # fmt: skip
    publish(bot_env, rejected)
    publish(bot_env, rejected)
    message = wait_feedback(user, after=5)[-1].params["text"]
    assert "could not hear any speech" in message and "No credit was spent." in message
    tg.wait_for(lambda _c: len(read_topic(bot_env, Topic.FEEDBACK, 2, timeout=5)) == 2)
    time.sleep(2)
    assert len(user.sent()) == 6
    assert rows(bot_env, "SELECT reason, delta FROM credit_ledger ORDER BY id") == [
        ("starter", 3), ("answer", -1), ("refund", 1),
    ]  # fmt: skip
    assert rows(bot_env, "SELECT status FROM answers") == [("rejected",)]


def catalog_text(lang: str, msgid: str) -> str:
    """A text as the catalog file has it, read without the gettext machinery the bot uses."""
    entry = read_catalog(lang).get(msgid)
    assert entry is not None, f"{lang}: {msgid!r} is not in the catalog"
    return str(entry.string) if lang != "en" else msgid


def test_every_rejection_reason_reaches_the_learner_as_the_catalog_text(
    running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    # What the bot really sends in Telegram for each code the pipeline can emit, in both languages, is the
    # catalog's text for that code (plus "no credit was spent"); a code it does not know gets the general line.
    audio, seconds = voice_ogg
    learners = [
        (onboard(tg), "en", "TOEFL Task 1 (independent)", "Retry"),
        (onboard(tg, language_code="ru", choose="Русский"), "ru", "TOEFL, задание 1 (independent)", "Ещё раз"),
    ]
    codes = [(r.value, rejections.TEXTS[r]) for r in RejectionReason] + [("audio.too_short", rejections.UNKNOWN)]
    wrong = []
    for user, lang, track, retry in learners:
        ask_question(user, track)
        for code, msgid in codes:
            n = len(user.sent())
            update = user.voice(audio, seconds)
            user.wait_sent(n + 1)  # "Answer received"
            answer_id = str(repo.answer_id_for(user.id, update["message"]["message_id"]))
            tg.wait_for(lambda _c, a=answer_id: rows(bot_env, "SELECT status FROM answers WHERE id = %s", a)
                        == [("published",)])  # fmt: skip
            ((learner_id,),) = rows(bot_env, "SELECT learner_id FROM answers WHERE id = %s", answer_id)
            publish(bot_env, FeedbackResult(
                answer_id=answer_id, learner_id=str(learner_id), question_id="q", track=Track.TOEFL,
                task_type=TaskType.TOEFL_INDEPENDENT, status=ResultStatus.REJECTED, rejection_reason=code,
                interface_language=lang, answered_at=datetime.now(UTC),
            ))  # fmt: skip
            sent = str(wait_feedback(user, after=n + 1)[-1].params["text"])
            expected = f"{catalog_text(lang, msgid)} {catalog_text(lang, rejections.NO_CREDIT)}"
            if sent != expected:
                wrong.append(f"{lang} {code}: sent {sent!r}, the catalog says {expected!r}")
            before = len(user.sent())
            user.press(retry)
            user.wait_sent(before + 1)  # the same question again
    assert not wrong, "\n".join(wrong)
    # Every rejection was refunded: the learners still have their starter credits.
    assert rows(bot_env, "SELECT count(*) FROM answers WHERE status = 'rejected'") == [(2 * len(codes),)]
    assert rows(bot_env, "SELECT sum(delta) FROM credit_ledger") == [(2 * bot_env.bot.starter_credits,)]


def test_stars_payments(running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings) -> None:
    user = onboard(tg)
    user.text("/buy")
    user.wait_sent(4)
    user.press("10 credits for 50 ⭐")
    invoice = tg.wait_sent(user.id, 1, method="sendInvoice")[0].params
    assert invoice["currency"] == "XTR" and invoice["prices"] == [{"label": "10 credits", "amount": 50}]
    assert invoice["payload"] == "credits:10" and not invoice.get("provider_token")

    def pre_checkout(payload: str, amount: int) -> dict[str, object]:
        query_id = uuid.uuid4().hex
        tg.inject({"pre_checkout_query": {"id": query_id, "from": user.user, "currency": "XTR",
                                          "total_amount": amount, "invoice_payload": payload}})  # fmt: skip
        return tg.wait_for(
            lambda calls: next((c.params for c in calls if c.method == "answerPreCheckoutQuery"
                                and c.params["pre_checkout_query_id"] == query_id), None)
        )  # fmt: skip

    assert pre_checkout("credits:10", 50)["ok"] in ("true", True)
    refused = pre_checkout("credits:9999", 1)
    assert refused["ok"] in ("false", False) and "no longer valid" in refused["error_message"]
    assert pre_checkout("credits:10", 1)["ok"] in ("false", False)  # price tampered

    payment = {"currency": "XTR", "total_amount": 50, "invoice_payload": "credits:10",
               "telegram_payment_charge_id": "stars-charge-1", "provider_payment_charge_id": ""}  # fmt: skip
    n = len(user.sent())
    user.message(successful_payment=payment)
    assert "10 credits added. Your balance: 13 credits." in user.wait_sent(n + 1)[-1].params["text"]
    user.message(successful_payment=payment)  # Telegram redelivers the service message: credited and thanked once
    time.sleep(1.5)
    assert len(user.sent()) == n + 1
    assert rows(bot_env, "SELECT reason, delta, ref FROM credit_ledger ORDER BY id")[1:] == [
        ("purchase", 10, "stars-charge-1"),
    ]  # fmt: skip
    assert rows(bot_env, "SELECT credits, total_amount, currency FROM payments") == [(10, 50, "XTR")]
    user.text("/balance")
    assert "Your balance: 13 credits" in user.wait_sent(n + 2)[-1].params["text"]


def test_delete_my_data_erases_everything_and_tells_downstream(
    running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings, voice_ogg: tuple[bytes, int]
) -> None:
    other = onboard(tg)  # another learner, whose data stays
    user = onboard(tg)
    ask_question(user)
    user.voice(*voice_ogg)
    user.wait_sent(5)
    raw = decode_as(RawVoiceAnswer, read_topic(bot_env, Topic.RAW_ANSWERS, 1)[0])
    s3 = s3_client(bot_env)
    assert s3.head_object(Bucket=raw.audio.bucket, Key=raw.audio.key)
    user.text("/delete_my_data")
    user.wait_sent(6)
    user.press("Yes, delete everything")
    assert "All your data has been deleted" in user.wait_sent(7)[-1].params["text"]
    assert s3.list_objects_v2(Bucket=raw.audio.bucket).get("KeyCount", 0) == 0
    for table in ("answers", "consents", "question_history"):
        assert rows(bot_env, f"SELECT count(*) FROM {table} WHERE learner_id = %s", uuid.UUID(raw.learner_id)) == [
            (0,)
        ], table
    assert rows(bot_env, "SELECT count(*) FROM learners WHERE telegram_user_id = %s", user.id) == [(0,)]
    assert rows(bot_env, "SELECT count(*) FROM credit_ledger WHERE learner_id = %s", uuid.UUID(raw.learner_id)) == [
        (0,)
    ]
    (event,) = read_topic(bot_env, Topic.DELETION_REQUESTS, 1)
    assert decode_as(LearnerDeletionRequest, event).learner_id == raw.learner_id
    assert rows(bot_env, "SELECT count(*) FROM learners WHERE telegram_user_id = %s", other.id) == [(1,)]


def test_admin_commands_are_invisible_to_others(running_bot: RunningBot, tg: TelegramStandIn) -> None:
    user = onboard(tg)
    user.text("/no_such_command")
    unknown = user.wait_sent(4)[-1].params["text"]
    for command in ("/admin_stats", "/broadcast"):
        user.text(command)
        assert user.wait_sent(len(user.sent()) + 1)[-1].params["text"] == unknown
    menus = [c.params for c in tg.calls if c.method == "setMyCommands"]
    default = next(m for m in menus if m["scope"]["type"] == "default")
    assert "admin_stats" not in str(default["commands"])
    admin_menu = next(m for m in menus if m["scope"]["type"] == "chat")
    assert admin_menu["scope"]["chat_id"] == ADMIN_ID and "admin_stats" in str(admin_menu["commands"])

    admin = User(tg, user_id=ADMIN_ID)
    admin.text("/start")
    admin.wait_sent(1)
    admin.press("English")
    admin.wait_sent(2)
    admin.press("I agree")
    admin.wait_sent(3)
    admin.text("/admin_stats")
    assert "Learners: 2 (2 onboarded)" in admin.wait_sent(4)[-1].params["text"]
    admin.text("/broadcast")
    admin.wait_sent(5)
    admin.text("New TOEFL sets this week!")
    admin.wait_sent(6)
    admin.press("Send")
    assert "Broadcast sent to 2 of 2" in admin.wait_sent(8)[-1].params["text"]
    assert user.sent()[-1].params["text"] == "New TOEFL sets this week!"
