"""The answer job with the OpenAI engines: the real openai SDK inside the real job, against a local
OpenAI-compatible stand-in that can fail in every way the API does (500, 429 with Retry-After, slow, malformed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from control.harness.answer_job import (
    ANSWER_45S,
    Harness,
    audio_bucket,
    job_settings,
    plain_text,
    speech_ogg,
    start_job,
)
from control.stack import Stack
from speech_coach.contracts import ResultStatus
from tests.openai_standin import OpenAIStandIn

pytestmark = pytest.mark.stack

TRANSCRIPT = " ".join(plain_text(ANSWER_45S).split())


@pytest.fixture(scope="module")
def standin() -> Iterator[OpenAIStandIn]:
    server = OpenAIStandIn()
    server.start()
    server.transcript = TRANSCRIPT
    yield server
    server.stop()


@pytest.fixture(scope="module")
def harness(stack: Stack, standin: OpenAIStandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    workdir = tmp_path_factory.mktemp("answer-job-openai")
    settings, variables = job_settings(
        stack.settings,
        workdir,
        SC_TRANSCRIPTION__ENGINE="openai",
        SC_FEEDBACK__ENGINE="openai",
        SC_OPENAI__BASE_URL=standin.base_url,
        SC_OPENAI__API_KEY="sk-test-standin",
        SC_OPENAI__TIMEOUT_S="2",
        SC_OPENAI__MAX_RETRIES="2",
    )
    job = start_job(settings, variables, workdir / "job.log")
    h = Harness(settings, job, audio_bucket(settings), variables)
    try:
        first, _ = speech_ogg("Hello. I am ready to practise my English today.", h.ffmpeg)
        h.wait(h.submit(first), timeout=240)
        yield h
    finally:
        h.collector.close()
        h.job.stop()


@pytest.fixture(scope="module")
def answer_ogg(harness: Harness) -> bytes:
    return speech_ogg(ANSWER_45S, harness.ffmpeg)[0]


def test_openai_engines_transcribe_and_score_with_the_learners_temperature(
    harness: Harness, standin: OpenAIStandIn, answer_ogg: bytes
) -> None:
    standin.reset()
    answer_id = harness.submit(answer_ogg, transcription_temperature=0.4)
    result = harness.wait(answer_id)[answer_id]

    (transcription,) = standin.seen("transcriptions")
    assert transcription.fields["model"] == "whisper-1"
    assert transcription.fields["response_format"] == "verbose_json"
    assert set(transcription.fields["timestamp_granularities"]) == {"word", "segment"}
    assert float(transcription.fields["temperature"]) == 0.4
    assert transcription.fields["filename"] == "answer.ogg" and transcription.fields["file_bytes"] == len(answer_ogg)
    (chat,) = standin.seen("chat")
    assert chat.fields["model"] == "gpt-4o-mini"
    assert chat.fields["response_format"]["json_schema"]["strict"] is True
    assert "organic chemistry" in chat.fields["messages"][1]["content"]  # the transcript is in the prompt

    assert result.status is ResultStatus.OK and result.transcript == TRANSCRIPT
    assert result.words and result.words[0].word == "I"
    assert result.engine is not None and not result.engine.fallback
    assert (result.engine.transcription_engine, result.engine.transcription_model) == ("openai", "whisper-1")
    assert (result.engine.feedback_engine, result.engine.feedback_model) == ("openai", "gpt-4o-mini")
    assert result.engine.prompt_version == "feedback-prompt-1" and result.engine.scale == "toefl_0_4"
    assert [(r.criterion, r.score, r.max_score) for r in result.rubric] == [
        ("Delivery", 3.0, 4.0),
        ("Language Use", 3.0, 4.0),
        ("Topic Development", 3.0, 4.0),
    ]
    assert result.overall_score == 3.0 and result.improved_answer and result.strengths and result.suggestions
    # Fluency is still measured on the audio, not taken from the API's word timings.
    (metrics,) = harness.collector.wait_metrics(answer_id)
    assert metrics.silent_pause_count >= 4 and metrics.total_duration_s > 40  # type: ignore[attr-defined]


def test_rate_limits_are_retried_after_the_servers_delay(
    harness: Harness, standin: OpenAIStandIn, answer_ogg: bytes
) -> None:
    standin.reset()
    standin.endpoints["chat"].plan.extend(["429"])
    standin.endpoints["transcriptions"].plan.extend(["500"])
    answer_id = harness.submit(answer_ogg)
    result = harness.wait(answer_id)[answer_id]
    chat = standin.seen("chat")
    assert len(chat) == 2 and chat[1].at - chat[0].at >= 0.9  # Retry-After: 1
    assert len(standin.seen("transcriptions")) == 2
    assert result.engine is not None and not result.engine.fallback and result.engine.feedback_engine == "openai"


def test_persistent_server_errors_fall_back_to_the_offline_feedback(
    harness: Harness, standin: OpenAIStandIn, answer_ogg: bytes
) -> None:
    standin.reset(chat="500")
    answer_id = harness.submit(answer_ogg, interface_language="ru")
    result = harness.wait(answer_id)[answer_id]
    assert len(standin.seen("chat")) == 3  # the request and SC_OPENAI__MAX_RETRIES=2 retries
    assert result.status is ResultStatus.OK
    assert result.engine is not None and result.engine.fallback
    assert (result.engine.transcription_engine, result.engine.feedback_engine) == ("openai", "offline")
    assert result.engine.prompt_version.startswith("offline-rubric-")
    assert "Ваша ориентировочная оценка" in result.feedback


def test_malformed_output_is_asked_for_again_then_falls_back(
    harness: Harness, standin: OpenAIStandIn, answer_ogg: bytes
) -> None:
    standin.reset(chat="malformed")
    answer_id = harness.submit(answer_ogg)
    result = harness.wait(answer_id)[answer_id]
    assert len(standin.seen("chat")) == 2  # SC_FEEDBACK__INVALID_OUTPUT_RETRIES=1
    assert result.engine is not None and result.engine.fallback and result.engine.feedback_engine == "offline"


def test_a_slow_transcription_api_times_out_and_falls_back_to_whisper_offline(
    harness: Harness, standin: OpenAIStandIn, answer_ogg: bytes
) -> None:
    standin.reset(transcriptions="slow")
    answer_id = harness.submit(answer_ogg)
    result = harness.wait(answer_id)[answer_id]
    assert len(standin.seen("transcriptions")) == 3
    assert result.engine is not None and result.engine.fallback
    assert (result.engine.transcription_engine, result.engine.transcription_model) == ("offline", "whisper-tiny.en")
    assert result.engine.feedback_engine == "openai"
    assert "organic chemistry" in result.transcript.lower()


def test_a_malformed_transcription_response_falls_back_to_whisper_offline(
    harness: Harness, standin: OpenAIStandIn, answer_ogg: bytes
) -> None:
    standin.reset()
    standin.endpoints["transcriptions"].plan.extend(["malformed"])
    answer_id = harness.submit(answer_ogg)
    result = harness.wait(answer_id)[answer_id]
    assert len(standin.seen("transcriptions")) == 1  # a body that is not JSON is not retried: the SDK got a 200
    assert result.status is ResultStatus.OK
    assert result.engine is not None and result.engine.fallback
    assert (result.engine.transcription_engine, result.engine.feedback_engine) == ("offline", "openai")
    assert "organic chemistry" in result.transcript.lower()


def test_speech_the_api_identifies_as_another_language_is_rejected(
    harness: Harness, standin: OpenAIStandIn, answer_ogg: bytes
) -> None:
    standin.reset()
    standin.language = "russian"
    answer_id = harness.submit(answer_ogg)
    result = harness.wait(answer_id)[answer_id]
    assert result.status is ResultStatus.REJECTED and result.rejection_reason == "audio.not_english"
    assert standin.seen("chat") == []  # no feedback is paid for
    letters = harness.collector.dead_letters(lambda d: d.answer_id == answer_id)
    assert [d.reason for d in letters] == ["audio.not_english"]
