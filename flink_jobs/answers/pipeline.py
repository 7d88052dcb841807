"""The answer pipeline, one raw-answer record at a time: the logic the PyFlink answer job runs on its workers.

    raw bytes -> RawVoiceAnswer -> audio from S3 -> 16 kHz mono -> voice activity -> transcript
      -> fluency + lexical metrics -> feedback -> FeedbackResult + AnswerMetrics

Bad input never disappears and never half-publishes: a record that breaks its contract becomes a DeadLetter; an
answer whose audio cannot be used becomes a rejected FeedbackResult (the learner reads why, in their language,
and that no credit was spent) plus a DeadLetter with the same reason code. Outputs are keyed by answer id, so a
replay after a restart (at-least-once) overwrites instead of duplicating. Infrastructure failures (S3
unreachable) raise `TransientError`: the job restarts from its last checkpoint and the record is read again.
Reason codes are listed in docs/answer-pipeline.md.

Tracing: each answer is a span `answer.process` continuing the bot's trace (the event's `traceparent`), with one
child span per stage (download, decode, vad, transcribe, feedback, publish); the output events carry the publish
span's context onwards, so the bot's delivery joins the same trace. Log lines name the answer and the learner.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from speech_coach.audio.decode import Audio, AudioError, decode
from speech_coach.contracts.events import (
    AnswerMetrics,
    ContractError,
    DeadLetter,
    EngineInfo,
    Event,
    FeedbackResult,
    KeyMetrics,
    RawVoiceAnswer,
    ResultStatus,
    WordTiming,
    decode_as,
)
from speech_coach.contracts.topics import Topic
from speech_coach.feedback.base import Feedback, FeedbackEngine, FeedbackInput
from speech_coach.feedback.offline import OfflineFeedback
from speech_coach.kafka import topic_name
from speech_coach.logging import get_logger
from speech_coach.observability.tracing import context_from_traceparent, current_traceparent, tracer
from speech_coach.rejections import RejectionReason, rejection_text
from speech_coach.settings import Settings
from speech_coach.speech import fluency as fluency_mod
from speech_coach.speech.transcribe import (
    EngineUnavailable,
    OfflineTranscriber,
    OpenAITranscriber,
    Transcriber,
    Transcript,
    english_problem,
)
from speech_coach.text import analyze, warm_up

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = get_logger(__name__)
_tracer = tracer("flink_jobs.answers.pipeline")


class TransientError(RuntimeError):
    """Infrastructure is unavailable; the record must be processed again later, not rejected."""


class Rejection(Exception):
    """An answer that cannot be answered: why (`reason`), at which stage, a detail for operators, and the limit
    it broke where the learner's text names one."""

    def __init__(self, stage: str, reason: RejectionReason, detail: str, *, limit_s: float | None = None) -> None:
        super().__init__(detail)
        self.stage, self.reason, self.detail, self.limit_s = stage, reason, detail, limit_s


@dataclass
class Timings:
    """Seconds spent per stage of the last answer (logged, and read by the benchmark)."""

    stages: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, began: float) -> float:
        now = time.perf_counter()
        self.stages[stage] = round(now - began, 4)
        return now


class AnswerProcessor:
    """Turns raw-answer records into output events. Build once per worker; `open()` loads the models."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.raw_topic = topic_name(settings, Topic.RAW_ANSWERS)
        self.timings = Timings()
        self._opened = False

    def open(self) -> None:
        if self._opened:
            return
        from speech_coach.s3 import s3_client
        from speech_coach.tools import find_ffmpeg

        s = self.settings
        self.ffmpeg = find_ffmpeg(s).executable
        self.s3: S3Client = s3_client(s, retries=5)
        self.offline = OfflineTranscriber(s)  # also the fallback of the OpenAI engine
        self.transcriber: Transcriber = OpenAITranscriber(s) if s.transcription.engine == "openai" else self.offline
        self.offline_feedback = OfflineFeedback()
        self.feedback_engine: FeedbackEngine = self.offline_feedback
        if s.feedback.engine == "openai":
            from speech_coach.feedback.remote import OpenAIFeedback

            self.feedback_engine = OpenAIFeedback(s)
        self.questions = self._load_questions()
        warm_up()
        # The first VAD and Whisper calls build their sessions; pay for it now, not on the first learner.
        silence = Audio(np.zeros(16_000, dtype=np.float32))
        fluency_mod.speech_segments(silence.samples)
        self.offline.transcribe(silence, b"", "audio/wav", 0.0)
        self._opened = True

    def _load_questions(self) -> dict[str, str]:
        from speech_coach.questions import DEFAULT_BANK_DIR, QuestionBankError, load_bank

        directory = self.settings.answers.question_bank_dir or DEFAULT_BANK_DIR
        try:
            bank = load_bank(directory)
        except (QuestionBankError, OSError) as exc:
            # Feedback still works without question texts; relevance is then not estimated.
            log.warning("question bank unavailable", directory=str(directory), error=str(exc)[:500])
            return {}
        return {q.id: q.material_text() for q in bank.items}

    # --- one record ---------------------------------------------------------------------------------------

    def process(self, value: bytes) -> list[Event]:
        self.open()
        self.timings = Timings()
        try:
            answer = decode_as(RawVoiceAnswer, value)
        except ContractError as exc:
            return [self._dead_letter(value, "decode", exc.reason, str(exc), answer_id=_answer_id_of(value))]
        # An empty base context: a worker handles answers of many traces, none may leak into the next.
        parent = context_from_traceparent(answer.traceparent, Context())
        with (
            structlog.contextvars.bound_contextvars(answer_id=answer.answer_id, learner_id=answer.learner_id),
            _tracer.start_as_current_span(
                "answer.process",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={"speech_coach.answer_id": answer.answer_id, "speech_coach.task_type": answer.task_type},
            ) as span,
        ):
            events = self._process_or_reject(value, answer)
            if isinstance(result := events[0], FeedbackResult):
                span.set_attribute("speech_coach.status", result.status.value)
                if result.status is ResultStatus.REJECTED:
                    span.set_status(Status(StatusCode.ERROR, result.rejection_reason or "rejected"))
            with _tracer.start_as_current_span("answer.publish", kind=SpanKind.PRODUCER):
                # Downstream (the bot's delivery, the metrics job) continues from here.
                traceparent = current_traceparent()
                return [e.model_copy(update={"traceparent": traceparent}) for e in events]

    def _process_or_reject(self, value: bytes, answer: RawVoiceAnswer) -> list[Event]:
        try:
            return self._process(answer)
        except Rejection as rejection:
            return self._reject(value, answer, rejection)
        except TransientError:
            raise
        except Exception as exc:  # a bug or an engine crash on this input: reject it, never loop on it
            log.error("answer failed", answer_id=answer.answer_id, error=repr(exc)[:500])
            detail = "".join(traceback.format_exception(exc))[-3000:]
            return self._reject(value, answer, Rejection("process", RejectionReason.INTERNAL_ERROR, detail))

    def _process(self, answer: RawVoiceAnswer) -> list[Event]:
        s = self.settings
        began = time.perf_counter()
        with _tracer.start_as_current_span("answer.download"):
            data = self._fetch(answer)
        began = self.timings.add("fetch", began)

        with _tracer.start_as_current_span("answer.decode"):
            try:
                audio = decode(data, self.ffmpeg, max_duration_s=s.answers.max_duration_s)
            except AudioError as exc:
                raise Rejection("decode", exc.reason, str(exc), limit_s=s.answers.max_duration_s) from exc
            limit = answer.speaking_time_s * s.answers.overtime_factor
            if audio.duration_s > limit:
                raise Rejection(
                    "decode",
                    RejectionReason.AUDIO_TOO_LONG,
                    f"{audio.duration_s:.1f} s exceeds {limit:.0f} s",
                    limit_s=limit,
                )
        began = self.timings.add("decode", began)

        with _tracer.start_as_current_span("answer.vad"):
            segments = fluency_mod.speech_segments(
                audio.samples, threshold=s.answers.vad_threshold, min_silence_ms=s.answers.vad_min_silence_ms
            )
            speech_s = sum(seg.end_s - seg.start_s for seg in segments)
            if speech_s < s.answers.min_speech_s:
                raise Rejection("vad", RejectionReason.AUDIO_SILENT, f"{speech_s:.2f} s of speech detected")
        began = self.timings.add("vad", began)

        with _tracer.start_as_current_span("answer.transcribe") as span:
            transcript = self._transcribe(answer, audio, data)
            span.set_attribute("speech_coach.engine", transcript.engine)
            if s.answers.language_check and (problem := english_problem(transcript, speech_s, s)):
                raise Rejection("transcribe", RejectionReason.AUDIO_NOT_ENGLISH, problem)
        began = self.timings.add("transcribe", began)

        with _tracer.start_as_current_span("answer.feedback"):
            lexical = analyze(transcript.text)
            spoken_words = _spoken_words(transcript.text, lexical.filled_pauses)
            fluency = fluency_mod.measure(
                segments,
                total_duration_s=audio.duration_s,
                words=spoken_words,
                filled_pauses=lexical.filled_pauses,
                question_sent_at=answer.question_sent_at,
                received_at=answer.received_at,
            )
            item = FeedbackInput(answer, self.questions.get(answer.question_id), transcript.text, fluency, lexical)
            feedback, feedback_fallback = self._feedback(item)
        self.timings.add("feedback", began)
        return self._results(answer, transcript, fluency, lexical, feedback, feedback_fallback)

    def _fetch(self, answer: RawVoiceAnswer) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        ref = answer.audio
        limit = self.settings.answers.max_audio_bytes
        if ref.size_bytes > limit:
            raise Rejection("download", RejectionReason.AUDIO_TOO_LARGE, f"{ref.size_bytes} bytes exceeds {limit}")
        try:
            obj = self.s3.get_object(Bucket=ref.bucket, Key=ref.key)
            if int(obj.get("ContentLength", 0)) > limit:
                raise Rejection("download", RejectionReason.AUDIO_TOO_LARGE, f"stored object exceeds {limit} bytes")
            data = obj["Body"].read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}:
                raise Rejection(
                    "download", RejectionReason.AUDIO_MISSING, f"s3://{ref.bucket}/{ref.key}: {code}"
                ) from exc
            raise TransientError(f"S3 get_object failed: {exc}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"S3 unreachable: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise Rejection("download", RejectionReason.AUDIO_CORRUPT, "the stored audio does not match its sha256")
        return data

    def _transcribe(self, answer: RawVoiceAnswer, audio: Audio, data: bytes) -> Transcript:
        temperature = answer.transcription_temperature
        try:
            return self.transcriber.transcribe(audio, data, answer.audio.mime_type, temperature)
        except EngineUnavailable as exc:
            if self.transcriber is self.offline or not self.settings.feedback.fallback:
                raise Rejection("transcribe", RejectionReason.TRANSCRIPTION_UNAVAILABLE, str(exc)) from exc
            log.warning("transcription engine failed, using offline", answer_id=answer.answer_id, error=str(exc))
            result = self.offline.transcribe(audio, data, answer.audio.mime_type, temperature)
            return Transcript(**{**result.__dict__, "fallback": True})

    def _feedback(self, item: FeedbackInput) -> tuple[Feedback, bool]:
        try:
            return self.feedback_engine.feedback(item), False
        except EngineUnavailable as exc:
            if self.feedback_engine is self.offline_feedback or not self.settings.feedback.fallback:
                raise Rejection("feedback", RejectionReason.FEEDBACK_UNAVAILABLE, str(exc)) from exc
            log.warning("feedback engine failed, using offline", answer_id=item.answer.answer_id, error=str(exc))
            return self.offline_feedback.feedback(item), True

    # --- outputs ------------------------------------------------------------------------------------------

    def _results(
        self,
        answer: RawVoiceAnswer,
        transcript: Transcript,
        fluency: fluency_mod.Fluency,
        lexical: Any,
        feedback: Feedback,
        feedback_fallback: bool,
    ) -> list[Event]:
        engine = EngineInfo(
            transcription_engine=transcript.engine,
            transcription_model=transcript.model,
            feedback_engine=feedback.engine,
            feedback_model=feedback.model,
            prompt_version=feedback.prompt_version,
            scale=feedback.scale,
            fallback=transcript.fallback or feedback_fallback,
        )
        result = FeedbackResult(
            answer_id=answer.answer_id,
            learner_id=answer.learner_id,
            question_id=answer.question_id,
            track=answer.track,
            task_type=answer.task_type,
            status=ResultStatus.OK,
            interface_language=answer.interface_language,
            transcript=transcript.text[:20000],
            words=[
                WordTiming(word=w.word[:128], start_s=w.start_s, end_s=max(w.start_s, w.end_s))
                for w in transcript.words
            ],
            rubric=feedback.rubric,
            overall_score=feedback.overall_score,
            feedback=feedback.feedback,
            strengths=feedback.strengths,
            suggestions=feedback.suggestions,
            improved_answer=feedback.improved_answer,
            metrics=KeyMetrics(
                words_per_minute=round(fluency.speaking_rate_wpm, 2),
                pause_count=fluency.silent_pause_count,
                mean_pause_s=round(fluency.mean_silent_pause_s, 3),
                lexical_diversity=round(lexical.mattr, 4),
            ),
            engine=engine,
            answered_at=answer.received_at,
            traceparent=answer.traceparent,
        )
        metrics = AnswerMetrics(
            answer_id=answer.answer_id,
            learner_id=answer.learner_id,
            question_id=answer.question_id,
            task_type=answer.task_type,
            answered_at=answer.received_at,
            overall_score=feedback.overall_score,
            traceparent=answer.traceparent,
            **fluency.contract_fields(),
            **lexical.contract_fields(),
        )
        log.info("answer processed", answer_id=answer.answer_id, engine=engine.model_dump(), **self.timings.stages)
        return [result, metrics]

    def _reject(self, value: bytes, answer: RawVoiceAnswer, rejection: Rejection) -> list[Event]:
        log.info("answer rejected", answer_id=answer.answer_id, reason=rejection.reason, detail=rejection.detail[:300])
        result = FeedbackResult(
            answer_id=answer.answer_id,
            learner_id=answer.learner_id,
            question_id=answer.question_id,
            track=answer.track,
            task_type=answer.task_type,
            status=ResultStatus.REJECTED,
            rejection_reason=rejection.reason,
            interface_language=answer.interface_language,
            feedback=rejection_text(rejection.reason, answer.interface_language, limit_s=rejection.limit_s),
            answered_at=answer.received_at,
            traceparent=answer.traceparent,
        )
        letter = self._dead_letter(
            value, rejection.stage, rejection.reason, rejection.detail, answer_id=answer.answer_id, key=answer.key()
        )
        # The result first: the learner hears back even if the dead letter is the one a crash loses.
        return [result, letter]

    def _dead_letter(
        self, value: bytes, stage: str, reason: str, detail: str, *, answer_id: str | None, key: bytes | None = None
    ) -> DeadLetter:
        return DeadLetter.of_record(
            value,
            source_topic=self.raw_topic,
            source_key=key.decode(errors="replace") if key else None,
            stage=stage,
            reason=reason,
            detail=detail[:4000],
            answer_id=answer_id,
        )


def _spoken_words(text: str, filled_pauses: int) -> int:
    """Words said, numbers included ("20" is spoken), filled pauses excluded: the basis of speaking rates."""
    from speech_coach.text.tokenize import _RUN

    return max(0, len(_RUN.findall(text.lower())) - filled_pauses)


def _answer_id_of(value: bytes) -> str | None:
    """The answer id of a record that failed its contract, when one can be read, so operators can find it."""
    import json

    try:
        raw = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    answer_id = raw.get("answer_id") if isinstance(raw, dict) else None
    return str(answer_id)[:512] if isinstance(answer_id, str | int) and str(answer_id) else None
