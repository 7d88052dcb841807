"""The answer job end to end, offline engines: real broker, real S3, the real PyFlink job, real faster-whisper
on speech the tests generate. The job starts once for the module; answers go through it one after another.

The job exports its spans to a local OTLP collector and serves /metrics (its own and Flink's), so the module also
shows the job's metrics moving and one trace from the real bot through the job to the delivered feedback."""

from __future__ import annotations

import base64
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.harness.answer_job import (
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
from control.harness.telegram import TelegramStandIn
from control.stack import Stack
from control.stack.isolated import settings_env
from speech_coach.contracts import ResultStatus
from speech_coach.s3 import s3_client
from speech_coach.speech.wer import wer
from tests.bot_harness import TOKEN, bot_settings, onboard
from tests.observability_assets import http_status, referenced, scrape
from tests.otlp_collector import OtlpCollector

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def otlp() -> Iterator[OtlpCollector]:
    collector = OtlpCollector().start()
    yield collector
    collector.stop()


@pytest.fixture(scope="module")
def harness(stack: Stack, tmp_path_factory: pytest.TempPathFactory, otlp: OtlpCollector) -> Iterator[Harness]:
    workdir = tmp_path_factory.mktemp("answer-job")
    settings, variables = job_settings(stack.settings, workdir, SC_TELEMETRY__OTLP_ENDPOINT=otlp.url)
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

    (metrics,) = harness.collector.wait_metrics(answer_id)
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


FLINK = "flink_taskmanager_job_task_operator_speech_coach_answers_"


def test_the_job_process_serves_health_and_flink_metrics(harness: Harness) -> None:
    """Scraped over HTTP after the answers above: Flink's own metrics (its Prometheus reporter) and the job's."""
    url = f"http://127.0.0.1:{harness.job.settings.answers.health_port}"
    with harness.collector.lock:
        answered = len(harness.collector.data.feedback)
    deadline = time.monotonic() + 30
    while True:  # the MiniCluster's reporter pushes every 5 s: a push may predate the last records counted
        metrics = scrape(url)
        results = metrics.get(f"{FLINK}ok", 0) + metrics.get(f"{FLINK}rejected", 0)
        if results >= answered and metrics.get(f"{FLINK}records_in", 0) >= answered + 2:
            break
        assert time.monotonic() < deadline, {k: v for k, v in metrics.items() if k.startswith(FLINK)}
        time.sleep(1)
    assert metrics[f"{FLINK}records_in"] >= answered + 2  # and the two contract breakers
    assert metrics[f"{FLINK}records_out"] >= 2 * answered
    assert metrics[f"{FLINK}ok"] >= 3 and metrics[f"{FLINK}rejected"] >= 8
    assert metrics[f"{FLINK}dead_letter"] >= 10 and metrics[f"{FLINK}audio_silent"] >= 1
    assert metrics[f"{FLINK}contract_not_json"] >= 1
    for stage in ("download", "decode", "transcribe", "feedback"):
        assert metrics[f"{FLINK}{stage}_count"] >= 3, stage
    assert metrics[f"{FLINK}transcribe_ms_sum"] > 0
    assert metrics[f"{FLINK}model_load_ms"] > 0
    # Flink's built-in operator and job metrics come through the same reporter.
    assert metrics["flink_taskmanager_job_task_operator_numRecordsIn"] > 0
    assert "flink_jobmanager_job_uptime" in metrics
    assert metrics["speech_coach_flink_job_running"] == 1
    # Every Flink metric of this job that the dashboards and alert rules use is really exported.
    used = {n for n in referenced() if n.startswith("flink_") and "speech_coach_metrics" not in n}
    assert used and not used - set(metrics), sorted(used - set(metrics))
    assert http_status(f"{url}/healthz") == 200 and http_status(f"{url}/readyz") == 200


def test_one_trace_follows_an_answer_from_the_bot_through_the_job_to_delivery(
    harness: Harness, otlp: OtlpCollector, pg_database: str, tmp_path: Path
) -> None:
    """The real bot (its own process, exporting to the same collector) takes a voice answer; the job answers it."""
    tg = TelegramStandIn(TOKEN).start()
    bot_env = bot_settings(harness.settings, pg_database, harness.bucket, tg)
    bot_env = bot_env.model_copy(
        update={
            "kafka": harness.settings.kafka,  # the job's topics
            "telemetry": bot_env.telemetry.model_copy(update={"otlp_endpoint": otlp.url}),
            "log": bot_env.log.model_copy(update={"json_output": True}),
        }
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")} | settings_env(bot_env)
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as handle:
        bot = subprocess.Popen(
            [sys.executable, "-m", "bot"], env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    health = f"http://127.0.0.1:{bot_env.bot.health_port}"
    try:
        deadline = time.monotonic() + 90
        while _status_or_none(f"{health}/readyz") != 200:
            assert bot.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.5)
        user = onboard(tg, "TOEFL Task 1 (independent)")
        ogg, speech = speech_ogg(ANSWERS_45S[1], harness.ffmpeg)
        user.voice(ogg, math.ceil(speech.duration_s))
        tg.wait_for(lambda _c: any("Overall score" in str(c.params.get("text")) for c in user.sent()), timeout=120)

        names = {"bot.receive_answer", "bot.store_audio", "bot.publish", "answer.process", "answer.download",
                 "answer.decode", "answer.vad", "answer.transcribe", "answer.feedback", "answer.publish",
                 "bot.deliver_feedback"}  # fmt: skip
        spans = {s.name: s for s in otlp.wait_for(names, timeout=60)}
        assert len({s.trace_id for s in spans.values()}) == 1  # one trace id across bot, job and delivery
        assert {spans[n].service for n in names if n.startswith("bot.")} == {"speech-coach-bot"}
        assert {spans[n].service for n in names if n.startswith("answer.")} == {"speech-coach-answer-job"}
        # Parents: Kafka (the event's traceparent) joins the bot's publish to the job, and the job's publish to
        # the delivery; each stage is a child of the job's span for the answer.
        assert spans["answer.process"].parent_span_id == spans["bot.publish"].span_id
        for stage in ("download", "decode", "vad", "transcribe", "feedback", "publish"):
            assert spans[f"answer.{stage}"].parent_span_id == spans["answer.process"].span_id, stage
        assert spans["bot.deliver_feedback"].parent_span_id == spans["answer.publish"].span_id
        answer_id = spans["answer.process"].attributes["speech_coach.answer_id"]

        metrics = scrape(health)
        assert metrics["bot_answers_total"] == 1 and metrics["bot_publish_attempts_total"] >= 1
        assert metrics["bot_feedback_latency_seconds_count"] == 1
        assert metrics["bot_last_feedback_delivered_timestamp_seconds"] > 0
    finally:
        os.killpg(bot.pid, signal.SIGTERM)
        bot.wait(60)
        tg.stop()
    # Logs: JSON lines naming the answer and the learner's pseudonym, never Telegram ids.
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    for event in ("answer published", "feedback delivered"):
        (line,) = [x for x in lines if x.get("event") == event]
        assert line["answer_id"] == answer_id and line["learner"].startswith("L"), line
    assert str(user.id) not in log_path.read_text()
    (processed,) = [
        ln for ln in harness.job.log.read_text().splitlines() if "answer processed" in ln and answer_id in ln
    ]
    assert "learner_id" in processed  # the job's lines name the answer and the (internal, pseudonymous) learner id


def _status_or_none(url: str) -> int | None:
    try:
        return http_status(url)
    except OSError:
        return None


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
