"""The answer job end to end, offline engines: real broker, real S3, the real PyFlink job, real faster-whisper
on speech the tests generate. The job starts once for the module; answers go through it one after another."""

from __future__ import annotations

import base64
import os
import signal
import time
import uuid
from collections.abc import Iterator

import pytest

from speech_coach.contracts import ResultStatus
from speech_coach.s3 import s3_client
from speech_coach.speech.wer import wer
from speech_coach.stack import Stack
from tests.answers_support import (
    ANSWER_45S,
    ANSWERS_45S,
    RUSSIAN_ANSWER,
    Harness,
    audio_bucket,
    job_settings,
    plain_text,
    raw_answer,
    speech_ogg,
    start_job,
    upload,
)

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def harness(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    workdir = tmp_path_factory.mktemp("answer-job")
    settings, variables = job_settings(stack.settings, workdir)
    job = start_job(settings, variables, workdir / "job.log")
    h = Harness(settings, job, audio_bucket(settings), variables)
    try:
        # The first answer also waits out the job's start-up (JVM, Python worker, model load).
        first, _ = speech_ogg("Hello. I am ready to practise my English today.", h.ffmpeg)
        h.wait(h.submit(first), timeout=240)
        yield h
    finally:
        h.collector.close()
        h.job.stop()


def test_a_45_second_answer_gets_feedback_and_metrics(harness: Harness) -> None:
    ogg, speech = speech_ogg(ANSWER_45S, harness.ffmpeg)
    answer_id = harness.submit(ogg, speaking_time_s=45)
    result = harness.wait(answer_id)[answer_id]

    assert result.status is ResultStatus.OK and result.rejection_reason is None
    assert wer(plain_text(ANSWER_45S), result.transcript) < 0.2, result.transcript
    assert result.words and result.words[0].start_s < 2.0
    assert result.engine is not None
    assert result.engine.transcription_engine == "offline" and result.engine.transcription_model == "whisper-tiny.en"
    assert result.engine.feedback_engine == "offline" and result.engine.scale == "toefl_0_4"
    assert result.engine.prompt_version.startswith("offline-rubric-") and not result.engine.fallback
    assert [r.criterion for r in result.rubric] == ["Delivery", "Language Use", "Topic Development"]
    assert all(0 <= r.score <= 4 and r.max_score == 4 and r.comment for r in result.rubric)
    assert result.overall_score is not None and 2 <= result.overall_score <= 4
    assert 2 <= len(result.feedback.split(". ")) <= 5 and result.strengths and result.suggestions
    assert harness.collector.data.keys[answer_id] == answer_id.encode()  # idempotency key downstream

    (metrics,) = harness.collector.data.metrics[answer_id]
    assert abs(metrics.total_duration_s - speech.duration_s) < 0.2  # type: ignore[attr-defined]
    assert 0.7 * metrics.total_duration_s < metrics.speech_duration_s < metrics.total_duration_s  # type: ignore[attr-defined]
    # Four SSML breaks of 500-900 ms; sentence ends add espeak's own shorter pauses.
    assert metrics.silent_pause_count >= 4  # type: ignore[attr-defined]
    assert metrics.articulation_rate_wpm > metrics.speaking_rate_wpm > 100  # type: ignore[attr-defined]
    assert metrics.tokens > 100 and metrics.overall_score == result.overall_score  # type: ignore[attr-defined]
    # Question sent 75 s before the voice message arrived; the recording lasted ~46 s.
    assert 20 < metrics.time_to_answer_s < 35  # type: ignore[attr-defined]
    assert result.metrics is not None and result.metrics.pause_count == metrics.silent_pause_count  # type: ignore[attr-defined]


def test_job_interview_answer_uses_its_own_scale_and_russian_feedback(harness: Harness) -> None:
    text = (
        "In my previous job I led a small team. <break time='600ms'/> The situation was difficult because a "
        "client changed the deadline. My task was to deliver the project two weeks early. First, I split the "
        "work into smaller parts. As a result, we delivered on time and the client was happy."
    )
    ogg, _ = speech_ogg(text, harness.ffmpeg)
    answer_id = harness.submit(
        ogg,
        track="job_interview",
        task_type="job_interview",
        question_id="no-such-question",
        speaking_time_s=90,
        interface_language="ru",
    )
    result = harness.wait(answer_id)[answer_id]
    assert result.status is ResultStatus.OK
    assert result.engine is not None and result.engine.scale == "interview_1_5"
    assert [r.criterion for r in result.rubric] == ["Delivery", "Language Use", "Relevance", "Structure"]
    assert all(1 <= r.score <= 5 for r in result.rubric)
    assert "Ваша ориентировочная оценка" in result.feedback
    assert any("\u0430" <= ch <= "\u044f" for s in result.suggestions for ch in s)  # Cyrillic suggestions


def _silence_ogg(harness: Harness, seconds: float) -> bytes:
    from speech_coach.audio.tts import Speech, silence, to_ogg_opus

    return to_ogg_opus(Speech(silence(seconds, 16000), 16000), harness.ffmpeg)


def test_unusable_audio_is_rejected_with_a_reason_and_a_dead_letter(harness: Harness) -> None:
    h = harness
    russian, _ = speech_ogg(RUSSIAN_ANSWER, h.ffmpeg, voice="ru")
    long_ogg, _ = speech_ogg(ANSWER_45S, h.ffmpeg)
    garbage = os.urandom(4000)
    cases: dict[str, str] = {
        h.submit(garbage): "audio.undecodable",
        h.submit(_silence_ogg(h, 6)): "audio.silent",
        h.submit(russian, interface_language="ru"): "audio.not_english",
        # a listen-and-repeat item allows 10 s: a 46 s recording is more than twice that
        h.submit(long_ogg, task_type="toefl_listen_repeat", speaking_time_s=10): "audio.too_long",
    }
    missing = raw_answer(
        {
            "bucket": h.bucket,
            "key": "audio/00/gone.ogg",
            "sha256": "0" * 64,
            "mime_type": "audio/ogg",
            "size_bytes": 100,
            "duration_s": 3.0,
        }
    )
    h.producer.send(missing)
    cases[missing.answer_id] = "audio.missing"
    other = os.urandom(4000)  # not `garbage`: uploads are content-addressed, this object gets overwritten
    tampered = upload(h.settings, h.bucket, other)
    s3_client(h.settings).put_object(Bucket=h.bucket, Key=tampered["key"], Body=other[:-1])
    corrupt = raw_answer(tampered)
    h.producer.send(corrupt)
    cases[corrupt.answer_id] = "audio.corrupt"
    cases[h.submit(b"")] = "audio.empty"  # a zero-byte object
    huge = raw_answer({**upload(h.settings, h.bucket, garbage), "size_bytes": 50_000_000})
    h.producer.send(huge)
    cases[huge.answer_id] = "audio.too_large"

    results = h.wait(*cases, timeout=180)
    for answer_id, reason in cases.items():
        result = results[answer_id]
        assert result.status is ResultStatus.REJECTED, (reason, result)
        assert result.rejection_reason == reason
        assert result.rubric == [] and result.engine is None
        assert not h.collector.data.metrics.get(answer_id), "no metrics for a rejected answer"
        letters = h.collector.dead_letters(lambda d, a=answer_id: d.answer_id == a)
        assert [d.reason for d in letters] == [reason]
        assert letters[0].source_topic.endswith("speech-coach.answers.raw.v1")
        assert base64.b64decode(letters[0].payload_b64)  # the original record, intact
    ru = results[next(a for a, r in cases.items() if r == "audio.not_english")]
    assert "по-английски" in ru.feedback and "Кредит не списан" in ru.feedback
    silent = results[next(a for a, r in cases.items() if r == "audio.silent")]
    assert "speech" in silent.feedback and "No credit was spent." in silent.feedback


def test_records_breaking_the_contract_become_dead_letters(harness: Harness) -> None:
    h = harness
    marker = uuid.uuid4().hex
    h.producer.send_raw(b"\xff\xfe not json " + marker.encode())
    h.producer.send_raw(f'{{"event_type": "raw_voice_answer", "schema_version": 1, "answer_id": "{marker}"}}'.encode())
    not_json = h.collector.dead_letters(
        lambda d: marker.encode() in base64.b64decode(d.payload_b64) and d.reason == "contract.not_json", timeout=60
    )
    invalid = h.collector.dead_letters(lambda d: d.answer_id == marker, timeout=60)
    assert len(not_json) == 1 and not_json[0].stage == "decode"
    assert [d.reason for d in invalid] == ["contract.invalid"] and "learner_id" in invalid[0].detail
    assert marker not in h.collector.data.feedback  # nobody to answer: no feedback event


def test_each_answer_gets_exactly_one_result(harness: Harness) -> None:
    with harness.collector.lock:
        counts = {a: len(v) for a, v in harness.collector.data.feedback.items()}
    assert counts and set(counts.values()) == {1}, counts


def test_a_crashed_job_resumes_from_its_checkpoint_and_loses_no_answer(harness: Harness) -> None:
    h = harness
    clips = [speech_ogg(text, h.ffmpeg)[0] for text in ANSWERS_45S]
    ids = [h.submit(ogg) for ogg in clips + clips]
    deadline = time.monotonic() + 120
    while not any(h.collector.data.feedback.get(i) for i in ids):  # the job is in the middle of the batch
        assert time.monotonic() < deadline, h.job.tail()
        time.sleep(0.1)
    os.killpg(h.job.proc.pid, signal.SIGKILL)  # a crash: no clean shutdown, no final checkpoint
    h.job.proc.wait(10)
    with h.collector.lock:
        answered_before = {i for i in ids if h.collector.data.feedback.get(i)}
    assert len(answered_before) < len(ids), "the crash must interrupt the batch"
    h.job = start_job(h.settings, h.variables, h.job.log.with_name("job-restarted.log"))
    results = h.wait(*ids, timeout=300)
    assert all(r.status is ResultStatus.OK for r in results.values())
    # At-least-once: an answer in flight at the crash may be answered again after the restart, always under its
    # answer id as the key (consumers keep one result per key); everything else is answered once.
    with h.collector.lock:
        for answer_id in ids:
            copies = h.collector.data.feedback[answer_id]
            assert {c.answer_id for c in copies} == {answer_id}
            assert h.collector.data.keys[answer_id] == answer_id.encode()
    log = h.job.log.read_text(errors="replace")
    assert "answer job submitted" in log and "/chk-" in log  # it resumed from a checkpoint, not from scratch
