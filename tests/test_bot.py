"""The learner bot end to end: the real aiogram bot against the Telegram stand-in, with real PostgreSQL,
Kafka and S3 from the test stack, and real OGG/Opus voice answers synthesized with espeak-ng."""

from __future__ import annotations

import json
import math
import re
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from speech_coach.audio.tts import speech, to_ogg_opus
from speech_coach.contracts.events import (
    FeedbackResult, KeyMetrics, LearnerDeletionRequest, RawVoiceAnswer, ResultStatus, RubricScore, decode_as,
)  # fmt: skip
from speech_coach.contracts.topics import Topic
from speech_coach.s3 import s3_client
from speech_coach.settings import Settings
from speech_coach.stack import Stack
from tests.bot_harness import ADMIN_ID, RunningBot, bot_settings, publish, read_topic, rows
from tests.telegram_stand_in import TelegramStandIn, User, check_html

pytestmark = pytest.mark.stack

ANSWER_TEXT = (
    "I prefer studying alone because I can focus better. <break time=\"700ms\"/> For example, last semester "
    "I prepared for my exams in the library and my grades improved."
)


@pytest.fixture(scope="module")
def voice_ogg(stack: Stack) -> tuple[bytes, int]:
    pcm = speech(ANSWER_TEXT, ssml=True)
    return to_ogg_opus(pcm, stack.settings), math.ceil(pcm.duration_s)


@pytest.fixture
def tg() -> Iterator[TelegramStandIn]:
    stand_in = TelegramStandIn("123456789:TEST-token-for-the-stand-in").start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def bot_env(stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn) -> Settings:
    return bot_settings(stack.settings, pg_database, s3_bucket, tg)


@pytest.fixture
def running(bot_env: Settings) -> Iterator[RunningBot]:
    bot = RunningBot(bot_env).start()
    yield bot
    bot.stop()


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
    return bool(markup and "inline_keyboard" in markup and "Next" in str(markup) or "Дальше" in str(markup))


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
    running: RunningBot, tg: TelegramStandIn, bot_env: Settings, voice_ogg: tuple[bytes, int]
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
    for part in ("Transcript", "Delivery: <b>3/4</b>", "Clear &amp; steady &lt;pace&gt;", "Strengths",
                 "Relevant example", "Suggestions", "Improved example answer", "132 words per minute",
                 "Pauses: 2 (average 0.7 s)", "Lexical diversity (MATTR): 0.81", "Overall score: <b>3</b>"):  # fmt: skip
        assert part in whole, part
    buttons = [b["text"] for row in messages[-1].params["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["Next", "Retry", "Menu"]
    assert "reply_markup" not in messages[0].params or messages[0].params["reply_markup"] is None
    assert rows(bot_env, "SELECT status, overall_score, word_count > 0 FROM answers") == [("delivered", 3.0, True)]
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

    health = bot_env.bot.health_port
    assert http_get(f"http://127.0.0.1:{health}/healthz")[0] == 200
    status, body = http_get(f"http://127.0.0.1:{health}/readyz")
    assert status == 200 and json.loads(body)["checks"] == {"postgres": "ok", "kafka": "ok"}
    metrics = http_get(f"http://127.0.0.1:{health}/metrics")[1]
    assert 'bot_answers_total{outcome="published"} 1.0' in metrics
    assert 'bot_feedback_total{outcome="ok"} 1.0' in metrics
