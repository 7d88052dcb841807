"""How each event becomes rows of the raw tables. One function per topic; no I/O here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from speech_coach.contracts import (
    AnswerMetrics,
    DeadLetter,
    Event,
    FeedbackResult,
    LearnerDeletionRequest,
    RawVoiceAnswer,
    Topic,
    WindowedMetrics,
    WindowedVocabulary,
)

Rows = list[tuple[str, dict[str, Any]]]  # (table, row)


def _answer(e: RawVoiceAnswer) -> Rows:
    return [
        (
            "raw_answers",
            {
                "answer_id": e.answer_id,
                "learner_id": e.learner_id,
                "question_id": e.question_id,
                "track": e.track.value,
                "task_type": e.task_type.value,
                "interface_language": e.interface_language,
                "speaking_time_s": e.speaking_time_s,
                "question_sent_at": e.question_sent_at,
                "received_at": e.received_at,
                "audio_bucket": e.audio.bucket,
                "audio_key": e.audio.key,
                "audio_sha256": e.audio.sha256,
                "mime_type": e.audio.mime_type,
                "size_bytes": e.audio.size_bytes,
                "duration_s": e.audio.duration_s,
                "transcription_temperature": e.transcription_temperature,
                "event_id": e.event_id,
                "occurred_at": e.occurred_at,
            },
        )
    ]


def _feedback(e: FeedbackResult) -> Rows:
    engine, metrics = e.engine, e.metrics
    return [
        (
            "raw_feedback",
            {
                "answer_id": e.answer_id,
                "learner_id": e.learner_id,
                "question_id": e.question_id,
                "track": e.track.value,
                "task_type": e.task_type.value,
                "status": e.status.value,
                "rejection_reason": e.rejection_reason or "",
                "interface_language": e.interface_language,
                "transcript": e.transcript,
                "rubric_criteria": [r.criterion for r in e.rubric],
                "rubric_scores": [r.score for r in e.rubric],
                "rubric_max_scores": [r.max_score for r in e.rubric],
                "overall_score": e.overall_score,
                "feedback": e.feedback,
                "strengths": list(e.strengths),
                "suggestions": list(e.suggestions),
                "improved_answer": e.improved_answer,
                "words_per_minute": metrics.words_per_minute if metrics else None,
                "pause_count": metrics.pause_count if metrics else None,
                "mean_pause_s": metrics.mean_pause_s if metrics else None,
                "lexical_diversity": metrics.lexical_diversity if metrics else None,
                "transcription_engine": engine.transcription_engine if engine else "",
                "transcription_model": engine.transcription_model if engine else "",
                "feedback_engine": engine.feedback_engine if engine else "",
                "feedback_model": engine.feedback_model if engine else "",
                "prompt_version": engine.prompt_version if engine else "",
                "scale": engine.scale if engine else "",
                "fallback": int(engine.fallback) if engine else 0,
                "answered_at": e.answered_at,
                "event_id": e.event_id,
                "occurred_at": e.occurred_at,
            },
        )
    ]


def _metrics(e: AnswerMetrics) -> Rows:
    row = e.model_dump(exclude={"schema_version", "event_type", "traceparent"})
    row["task_type"] = e.task_type.value
    return [("raw_answer_metrics", row)]


def _window(e: WindowedMetrics) -> Rows:
    row = e.model_dump(exclude={"schema_version", "event_type", "traceparent"})
    row["window_kind"] = e.window_kind.value
    return [("raw_windowed_metrics", row)]


def _vocabulary(e: WindowedVocabulary) -> Rows:
    common = {
        "learner_id": e.learner_id,
        "window_kind": e.window_kind.value,
        "window_start": e.window_start,
        "window_end": e.window_end,
        "event_id": e.event_id,
    }
    return [("raw_word_counts", common | {"word": w, "frequency": n}) for w, n in sorted(e.words.items())]


def _deletion(e: LearnerDeletionRequest) -> Rows:
    return [
        ("raw_deletion_requests", {"learner_id": e.learner_id, "requested_at": e.requested_at, "event_id": e.event_id})
    ]


def _dead_letter(e: DeadLetter) -> Rows:
    return [
        (
            "raw_dead_letters",
            {
                "source_topic": e.source_topic,
                "source_partition": e.source_partition,
                "source_offset": e.source_offset,
                "stage": e.stage,
                "reason": e.reason,
                "detail": e.detail,
                "answer_id": e.answer_id,
                "payload_b64": e.payload_b64,
                "failed_at": e.occurred_at,
                "event_id": e.event_id,
            },
        )
    ]


ROW_BUILDERS: dict[Topic, Callable[[Any], Rows]] = {
    Topic.RAW_ANSWERS: _answer,
    Topic.FEEDBACK: _feedback,
    Topic.ANSWER_METRICS: _metrics,
    Topic.WINDOWED_METRICS: _window,
    Topic.VOCABULARY: _vocabulary,
    Topic.DELETION_REQUESTS: _deletion,
    Topic.DEAD_LETTERS: _dead_letter,
}

# Tables holding learner data, erased when a learner asks (raw_deletion_requests itself is the audit trail).
LEARNER_TABLES = [
    "raw_answers",
    "raw_feedback",
    "raw_answer_metrics",
    "raw_windowed_metrics",
    "raw_word_counts",
    "raw_learners",
    "raw_credit_ledger_snapshots",
]


def rows_for(topic: Topic, event: Event) -> Rows:
    return ROW_BUILDERS[topic](event)
