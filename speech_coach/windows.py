"""Per-learner windows over answers: their boundaries and results, shared by the metrics job and batch code.

The PyFlink metrics job (`flink_jobs/metrics`) decides *when* a window is complete; this module decides *what*
it contains and what it says, so a batch recomputation over the same answers (`recompute`) gives the same
events, bit for bit. Definitions: docs/metrics.md, "Windows".

Times are integer milliseconds since the epoch (Flink's event time); days and months are UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from speech_coach.contracts.events import (
    AnswerMetrics,
    FeedbackResult,
    ResultStatus,
    WindowedMetrics,
    WindowedVocabulary,
    WindowKind,
)
from speech_coach.text import pool, tokenize

DAY_MS = 86_400_000
SLIDING_DAYS = 7
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The contract's pooled metrics, each computed by `pool` under the same name: a new one needs no edit here.
POOLED_FIELDS = tuple(name for name in WindowedMetrics.model_fields if name.startswith("pooled_"))


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exactly (no float rounding); sub-millisecond digits are dropped."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the windows need from one answer: its words (from the transcript) and its per-answer features."""

    answer_id: str
    learner_id: str
    answered_at_ms: int
    words: tuple[str, ...]
    score: float | None
    speaking_rate_wpm: float
    time_to_answer_s: float | None
    position: int = -1  # where its words start in the learner's word stream (`MattrPrefix`); -1: not placed

    @property
    def order(self) -> tuple[int, str]:
        """Window order: event time, then answer id for answers given in the same millisecond."""
        return (self.answered_at_ms, self.answer_id)


@dataclass(frozen=True, slots=True)
class FeedbackPart:
    """What the windows take from a `FeedbackResult`: the transcript's words and the score."""

    answer_id: str
    learner_id: str
    answered_at_ms: int
    ok: bool
    words: tuple[str, ...]
    score: float | None


@dataclass(frozen=True, slots=True)
class MetricsPart:
    """What the windows take from an `AnswerMetrics`: fluency features (and its copy of the score)."""

    answer_id: str
    learner_id: str
    answered_at_ms: int
    speaking_rate_wpm: float
    time_to_answer_s: float | None
    score: float | None


def feedback_part(event: FeedbackResult) -> FeedbackPart:
    ok = event.status == ResultStatus.OK
    words = tuple(tokenize(event.transcript).words) if ok else ()
    return FeedbackPart(event.answer_id, event.learner_id, to_ms(event.answered_at), ok, words, event.overall_score)


def metrics_part(event: AnswerMetrics) -> MetricsPart:
    return MetricsPart(
        event.answer_id,
        event.learner_id,
        to_ms(event.answered_at),
        event.speaking_rate_wpm,
        event.time_to_answer_s,
        event.overall_score,
    )


def join(feedback: FeedbackPart, metrics: MetricsPart) -> Answer | None:
    """The joined answer, or None for a rejected one (bad audio: it is not part of the learner's record).

    Words come from the feedback's transcript (the core tokenizer, docs/metrics.md); the score is the
    feedback's overall score (the metrics event's copy when the feedback has none); fluency and the event time
    come from the metrics event.
    """
    if not feedback.ok:
        return None
    return Answer(
        answer_id=metrics.answer_id,
        learner_id=metrics.learner_id,
        answered_at_ms=metrics.answered_at_ms,
        words=feedback.words,
        score=feedback.score if feedback.score is not None else metrics.score,
        speaking_rate_wpm=metrics.speaking_rate_wpm,
        time_to_answer_s=metrics.time_to_answer_s,
    )


def answer_from(feedback: FeedbackResult, metrics: AnswerMetrics) -> Answer | None:
    """`join` of the two events of one answer."""
    return join(feedback_part(feedback), metrics_part(metrics))


# --- window boundaries ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Window:
    kind: WindowKind
    start_ms: int
    end_ms: int  # exclusive for time windows; for last-N, the newest answer's time (inclusive)


def day_index(ts_ms: int) -> int:
    return ts_ms // DAY_MS


def day_window(day: int) -> Window:
    return Window(WindowKind.DAY, day * DAY_MS, (day + 1) * DAY_MS)


def sliding_window_ending(day: int) -> Window:
    """The 7-day window whose last day is `day` (days day-6 .. day)."""
    return Window(WindowKind.SLIDING_7D, (day - SLIDING_DAYS + 1) * DAY_MS, (day + 1) * DAY_MS)


def month_bounds(day: int) -> tuple[int, int]:
    """(first day, day after the last day) of the UTC calendar month holding `day`, as day indexes."""
    moment = from_ms(day * DAY_MS)
    first = moment.replace(day=1)
    following = (
        first.replace(year=first.year + 1, month=1) if first.month == 12 else first.replace(month=first.month + 1)
    )
    return day_index(to_ms(first)), day_index(to_ms(following))


def month_window(day: int) -> Window:
    first, following = month_bounds(day)
    return Window(WindowKind.MONTH, first * DAY_MS, following * DAY_MS)


def last_n_window(answers: Sequence[Answer]) -> Window:
    return Window(WindowKind.LAST_10, answers[0].answered_at_ms, answers[-1].answered_at_ms)


# --- window results ------------------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def window_events(
    learner_id: str, window: Window, answers: Sequence[Answer], mattr_sum: int | None = None
) -> tuple[WindowedMetrics, WindowedVocabulary]:
    """The window's metrics and vocabulary; `answers` in window order (`Answer.order`), at least one.
    `mattr_sum`: the pooled words' `mattr_windows_sum`, when the caller keeps it incrementally."""
    lexical = pool([a.words for a in answers], mattr_sum)
    start, end = from_ms(window.start_ms), from_ms(window.end_ms)
    metrics = WindowedMetrics(
        learner_id=learner_id,
        window_kind=window.kind,
        window_start=start,
        window_end=end,
        answer_count=len(answers),
        **{name: getattr(lexical, name) for name in POOLED_FIELDS},
        mean_score=_mean([a.score for a in answers if a.score is not None]),
        mean_speaking_rate_wpm=sum(a.speaking_rate_wpm for a in answers) / len(answers),
        mean_time_to_answer_s=_mean([a.time_to_answer_s for a in answers if a.time_to_answer_s is not None]),
    )
    vocabulary = WindowedVocabulary(
        learner_id=learner_id, window_kind=window.kind, window_start=start, window_end=end, words=lexical.vocabulary
    )
    return metrics, vocabulary


# --- batch recomputation -------------------------------------------------------------------------------------

Results = dict[bytes, tuple[WindowedMetrics, WindowedVocabulary]]


def recompute(answers: Iterable[Answer], last_n: int = 10) -> Results:
    """Every window of every learner over the given answers, by message key; what the job's output holds
    after deduplication by key (the last event per key wins).

    Duplicated answer ids count once. A learner's first answers form growing last-N windows from the first
    answer, each replacing the previous under the same key, so the key ends up holding the full window.
    """
    by_learner: dict[str, dict[str, Answer]] = {}
    for a in answers:
        by_learner.setdefault(a.learner_id, {})[a.answer_id] = a
    out: Results = {}

    def emit(learner: str, window: Window, members: Sequence[Answer]) -> None:
        metrics, vocabulary = window_events(learner, window, members)
        out[metrics.key()] = (metrics, vocabulary)

    for learner, unique in by_learner.items():
        ordered = sorted(unique.values(), key=lambda a: a.order)
        for i in range(len(ordered)):
            members = ordered[max(0, i - last_n + 1) : i + 1]
            emit(learner, last_n_window(members), members)
        days: dict[int, list[Answer]] = {}
        for a in ordered:
            days.setdefault(day_index(a.answered_at_ms), []).append(a)
        for day, members in days.items():
            emit(learner, day_window(day), members)
        for end in sorted({d + k for d in days for k in range(SLIDING_DAYS)}):
            members = [a for d in range(end - SLIDING_DAYS + 1, end + 1) for a in days.get(d, ())]
            emit(learner, sliding_window_ending(end), members)
        months: dict[int, list[Answer]] = {}
        for day, members in sorted(days.items()):
            months.setdefault(month_bounds(day)[0], []).extend(members)
        for first, members in months.items():
            emit(learner, month_window(first), members)
    return out


def comparable(event: WindowedMetrics | WindowedVocabulary) -> dict[str, object]:
    """An output event without its per-message envelope (event id, creation time), for comparisons."""
    return event.model_dump(exclude={"event_id", "occurred_at", "traceparent"})
