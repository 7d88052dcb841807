"""Deterministic answer events for the metrics job's tests and benchmark: what the answer job would publish.

Each answer is a `FeedbackResult` (a 120-word transcript drawn by real English word frequency, a score) and an
`AnswerMetrics` (fluency features, with the transcript's lexical metrics from the core), sharing `answered_at`.
Learners answer a few times a day over several weeks; arrival order is shuffled within a bound, as several
answer-job workers would deliver them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from benchmarks.lexical import transcripts
from speech_coach.contracts.events import AnswerMetrics, Event, FeedbackResult, ResultStatus, TaskType, Track
from speech_coach.text import analyze

START = datetime(2026, 10, 20, 6, 0, tzinfo=UTC)


@dataclass
class Generated:
    events: list[Event]  # in arrival order
    published_ms: list[int]  # when each was published (its Kafka record timestamp): answered_at + a delay
    feedback: list[FeedbackResult]
    metrics: list[AnswerMetrics]


def answer_pair(
    rng: random.Random, learner: str, answer_id: str, at: datetime, transcript: str, *, lexical: bool = True
) -> tuple[FeedbackResult, AnswerMetrics]:
    score = round(rng.uniform(1.0, 4.0), 2)
    feedback = FeedbackResult(
        answer_id=answer_id,
        learner_id=learner,
        question_id=f"toefl-t1-{rng.randint(1, 60):03d}",
        track=Track.TOEFL,
        task_type=TaskType.TOEFL_INDEPENDENT,
        status=ResultStatus.OK,
        transcript=transcript,
        overall_score=score,
        feedback="Clear answer; add a concrete example.",
        answered_at=at,
    )
    duration = rng.uniform(35.0, 45.0)
    words = len(transcript.split())
    fields = analyze(transcript).contract_fields() if lexical else {}
    defaults = {"tokens": 0, "types": 0, "ttr": 0, "root_ttr": 0, "mattr": 0, "mtld": 0, "hdd": 0}
    metrics = AnswerMetrics(
        answer_id=answer_id,
        learner_id=learner,
        question_id=feedback.question_id,
        task_type=feedback.task_type,
        answered_at=at,
        total_duration_s=round(duration, 2),
        speech_duration_s=round(duration * 0.8, 2),
        speaking_rate_wpm=round(words / duration * 60, 2),
        articulation_rate_wpm=round(words / (duration * 0.8) * 60, 2),
        silent_pause_count=rng.randint(3, 15),
        mean_silent_pause_s=round(rng.uniform(0.3, 1.2), 3),
        mean_length_of_run_words=round(rng.uniform(4, 12), 2),
        filled_pause_count=rng.randint(0, 5),
        time_to_answer_s=round(rng.uniform(0.5, 6.0), 2) if rng.random() > 0.1 else None,
        overall_score=score,
        **(defaults | {"mean_zipf": 0, "rare_word_share": 0} | fields),  # type: ignore[arg-type]
    )
    return feedback, metrics


def generate(
    learners: int,
    answers_per_learner: int,
    *,
    days: int = 40,
    seed: int = 7,
    shuffle_s: float = 60.0,
    lexical: bool = True,
    distinct_transcripts: int = 2000,
) -> Generated:
    """Answers spread over `days` days from START (a month boundary inside), arriving up to `shuffle_s`
    seconds out of event-time order. `lexical=False` leaves AnswerMetrics' lexical fields at 0 (faster to make;
    the metrics job does not read them)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    texts = transcripts(min(distinct_transcripts, learners * answers_per_learner), seed=seed)
    pairs: list[tuple[float, FeedbackResult, AnswerMetrics]] = []
    span = days * 86_400
    for learner_no in range(learners):
        learner = f"lrn-{seed}-{learner_no:05d}"
        times = sorted(rng.uniform(0, span) for _ in range(answers_per_learner))
        for k, offset in enumerate(times):
            at = START + timedelta(seconds=round(offset, 3))
            fb, m = answer_pair(rng, learner, f"{learner}-a{k:04d}", at, rng.choice(texts), lexical=lexical)
            pairs.append((offset, fb, m))
    # Arrival: event time plus a random delay of up to shuffle_s, each topic on its own.
    events: list[tuple[float, Event]] = []
    for offset, fb, m in pairs:
        events.append((offset + rng.uniform(0, shuffle_s), fb))
        events.append((offset + rng.uniform(0, shuffle_s), m))
    events.sort(key=lambda e: e[0])
    start_ms = int(START.timestamp() * 1000)
    return Generated(
        [e for _, e in events],
        [start_ms + round(t * 1000) for t, _ in events],
        [fb for _, fb, _ in pairs],
        [m for _, _, m in pairs],
    )
