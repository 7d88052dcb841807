"""The metrics job's Python functions: decode and key the inputs, then join and window per learner.

Plain Python over compact records, so the logic is testable without Flink; `job.py` wires it into operators.
Window contents and results come from the core (`speech_coach.windows`), the same code as the batch
recomputation.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from speech_coach.contracts.events import (
    AnswerMetrics,
    DeadLetter,
    Event,
    FeedbackResult,
    decode_as,
    encode,
)
from speech_coach.text import MattrPrefix
from speech_coach.windows import (
    DAY_MS,
    SLIDING_DAYS,
    Answer,
    FeedbackPart,
    MetricsPart,
    Window,
    day_index,
    day_window,
    feedback_part,
    from_ms,
    join,
    last_n_window,
    metrics_part,
    month_bounds,
    month_window,
    sliding_window_ending,
    window_events,
)

# Checkpoints and savepoints written before this module was renamed pickle its classes as
# `flink_jobs.metrics.functions.<name>`; the alias lets a job restored from one read them.
sys.modules.setdefault("flink_jobs.metrics.functions", sys.modules[__name__])

FEEDBACK, METRICS = "feedback", "metrics"
STAGE = "metrics.window"
_FAST = {b'"event_type":"feedback_result"': FeedbackResult, b'"event_type":"answer_metrics"': AnswerMetrics}


@dataclass(frozen=True)
class Topics:
    """Full topic names (with the environment's prefix), resolved once on the driver."""

    feedback: str
    metrics: str
    windowed_metrics: str
    vocabulary: str
    dead_letters: str


# A record between the operators: (learner id, answered_at ms, part, original bytes).
Part = FeedbackPart | MetricsPart
Record = tuple[str, int, Part, bytes]
# What the job emits: (topic, key, value), the shape of flink_jobs.common.OUTPUT_TYPE.
Out = tuple[str, bytes, bytes]


def decode_input(data: bytes) -> FeedbackResult | AnswerMetrics:
    """One input record as its event; raises ContractError (with the contract's reason) when it is not one."""
    # Fast path for the compact JSON every platform producer writes; anything else takes the checked path,
    # which names the failing fields.
    for marker, cls in _FAST.items():
        if marker in data:
            try:
                return cls.model_validate_json(data)
            except ValidationError:
                break
    try:
        event_type = json.loads(data).get("event_type")
    except (ValueError, AttributeError):
        event_type = None
    cls = AnswerMetrics if event_type == AnswerMetrics.EVENT_TYPE else FeedbackResult
    return decode_as(cls, data)


def to_record(data: bytes) -> Record:
    event = decode_input(data)
    part: Part = feedback_part(event) if isinstance(event, FeedbackResult) else metrics_part(event)
    return (part.learner_id, part.answered_at_ms, part, data)


def dead_letter(topics: Topics, data: bytes, reason: str, detail: str, part: Part | None = None) -> Out:
    source = topics.metrics if isinstance(part, MetricsPart) else topics.feedback if part else "unknown"
    if part is None:
        # Undecodable: name the topic from the payload when it says which event it is.
        source = topics.metrics if b"answer_metrics" in data else topics.feedback
    event = DeadLetter.of_record(
        data,
        source_topic=source,
        stage=STAGE,
        reason=reason,
        detail=detail[:4000],
        answer_id=part.answer_id if part else None,
    )
    return as_out(topics.dead_letters, event)


def as_out(topic: str, event: Event) -> Out:
    return (topic, event.key(), encode(event))


# --- per learner: join, order, window -----------------------------------------------------------------------


@dataclass
class Pending:
    """The parts of one answer seen so far, kept until the watermark passes its time."""

    answered_at_ms: int
    feedback: FeedbackPart | None = None
    feedback_raw: bytes = b""
    metrics: MetricsPart | None = None
    metrics_raw: bytes = b""


class LearnerState:
    """One learner's state, in whatever store the runtime gives (Flink keyed state, or dicts in tests).

    pending: answer id -> Pending (parts waiting for the watermark); days: day index -> that day's answers in
    window order; recent: the last N-1 answers; horizon: the last event time whose windows were emitted;
    stream: running MATTR sums over the learner's words (every window pools consecutive answers of that stream);
    timer: the one wake-up asked of the runtime and not yet passed.
    """

    def pending_get(self, answer_id: str) -> Pending | None: ...
    def pending_put(self, answer_id: str, value: Pending) -> None: ...
    def pending_items(self) -> list[tuple[str, Pending]]: ...
    def pending_remove(self, answer_id: str) -> None: ...
    def day_get(self, day: int) -> list[Answer] | None: ...
    def day_put(self, day: int, answers: list[Answer]) -> None: ...
    def day_remove(self, day: int) -> None: ...
    def days(self) -> list[int]: ...
    def recent(self) -> list[Answer]: ...
    def set_recent(self, answers: list[Answer]) -> None: ...
    def horizon(self) -> int | None: ...
    def set_horizon(self, value: int) -> None: ...
    def stream(self) -> MattrPrefix | None: ...
    def set_stream(self, value: MattrPrefix) -> None: ...
    def timer(self) -> int | None: ...
    def set_timer(self, value: int | None) -> None: ...


class LearnerWindows:
    """The per-learner logic: `on_part` for each record, `on_time` when the watermark passes a timer.

    An answer enters its windows when the watermark passes its time, in event-time order, so every window
    sees exactly the answers a batch recomputation sees, whatever order they arrived in.

    Timers: one per learner at a time, at the next moment something is due (the earliest pending answer, or the
    end of the next day that closes a window). A firing handles everything the watermark has passed, not just its
    own time: in PyFlink every timer is a round trip between the JVM and the Python worker, and a timer per
    answer and per day end cost far more than the windows themselves.
    """

    def __init__(self, topics: Topics, last_n: int, allowed_lateness_s: float) -> None:
        self.topics = topics
        self.last_n = last_n
        self.allowed_lateness_s = allowed_lateness_s
        self.counts: Counter[str] = Counter()
        self.on_count: dict[str, Any] = {}  # name -> a Flink metric counter, when running in Flink

    COUNTED = ("answers", "late", "unmatched", "duplicates", "rejected")

    def _count(self, name: str) -> None:
        self.counts[name] += 1
        if (counter := self.on_count.get(name)) is not None:
            counter.inc()

    def on_part(
        self, state: LearnerState, record: Record, watermark: int, register: list[int]
    ) -> Iterator[tuple[str, Out]]:
        """Store a part; yields ("late" | "duplicate", dead letter) for what cannot enter the windows. Timers to
        register are appended to `register`."""
        _, ts, part, raw = record
        timer = state.timer()
        if timer is not None and timer <= watermark:
            # Overdue: the watermark passed this learner's wake-up and it did not come (PyFlink hands timers over
            # asynchronously; one lost there left a learner's windows waiting for ever). Ask again: a timer asked
            # for twice is one timer, and one that fires twice changes nothing.
            register.append(timer)
        horizon = state.horizon()
        closed = max(watermark, horizon if horizon is not None else watermark)
        if ts <= closed:
            day = state.day_get(day_index(ts))
            if day is not None and any(a.answer_id == part.answer_id for a in day):
                self._count("duplicates")  # a redelivery of an answer already in its windows
                return
            self._count("late")
            detail = (
                f"answered_at {from_ms(ts).isoformat()} is at or before the watermark {from_ms(closed).isoformat()}"
                f"; allowed lateness {timedelta(seconds=self.allowed_lateness_s)}"
            )
            yield "late", dead_letter(self.topics, raw, "late", detail, part)
            return
        pending = state.pending_get(part.answer_id) or Pending(ts)
        if isinstance(part, FeedbackPart):
            pending.feedback, pending.feedback_raw = part, raw
        else:
            pending.metrics, pending.metrics_raw = part, raw
            pending.answered_at_ms = ts  # the metrics event carries the windowing time
        state.pending_put(part.answer_id, pending)
        self._wake(state, ts, register)

    @staticmethod
    def _wake(state: LearnerState, at: int | None, register: list[int]) -> None:
        """Ask for a wake-up at `at` unless one is already due no later."""
        current = state.timer()
        if at is not None and (current is None or at < current):
            register.append(at)
            state.set_timer(at)

    def on_time(self, state: LearnerState, learner: str, now: int, register: list[int]) -> Iterator[tuple[str, Out]]:
        """The watermark is `now` (a timer fired): apply the answers up to it, then emit the windows that end by
        it, then ask for the next wake-up."""
        timer = state.timer()
        if timer is not None and timer <= now:
            state.set_timer(None)  # it fired (or fires in this same advance and finds nothing left to do)
        ready: list[Answer] = []
        for answer_id, pending in state.pending_items():
            if pending.answered_at_ms > now:
                continue
            state.pending_remove(answer_id)
            if pending.feedback is not None and not pending.feedback.ok:
                self._count("rejected")  # bad audio: not part of the learner's record, with or without metrics
                continue
            if pending.feedback is None or pending.metrics is None:
                self._count("unmatched")
                present: Part = pending.feedback or pending.metrics  # type: ignore[assignment]
                raw = pending.feedback_raw or pending.metrics_raw
                missing = "answer_metrics" if pending.metrics is None else "feedback_result"
                detail = f"its {missing} did not arrive within the allowed lateness ({self.allowed_lateness_s} s)"
                yield "late", dead_letter(self.topics, raw, "unmatched", detail, present)
                continue
            answer = join(pending.feedback, pending.metrics)
            if answer is not None:
                ready.append(answer)
        ready.sort(key=lambda a: a.order)
        for answer in ready:
            yield from self._apply(state, learner, answer)
        # Close every day that ended by `now` and was not closed yet, whichever timer this is. PyFlink registers
        # timers asynchronously: a timer asked for in a callback can reach the JVM after the watermark passed it,
        # so it fires late, after later ones, or a second time. Days are therefore closed by time, not by timer.
        horizon = state.horizon()
        last = (now + 1) // DAY_MS - 1  # the last day whose end (its last millisecond) is <= now
        days = state.days()
        first = max((horizon + 1) // DAY_MS if horizon is not None else -(2**62), min(days)) if days else last + 1
        if days:  # no window closes after the last one holding a kept day (the watermark may jump far ahead)
            last = min(last, max(max(d + SLIDING_DAYS - 1, month_bounds(d)[1] - 1) for d in days))
        for day in range(first, last + 1):
            yield from self._close_day(state, learner, day)
        if horizon is None or now > horizon:
            state.set_horizon(now)
        self._wake(state, self._next_due(state, now), register)

    @staticmethod
    def _next_due(state: LearnerState, now: int) -> int | None:
        """The earliest time after `now` at which something is due: a pending answer, or the end of the first
        day from now on whose day, 7-day or month window holds answers."""
        due = [p.answered_at_ms for _, p in state.pending_items()]
        today = (now + 1) // DAY_MS  # the first day not closed yet
        for d in state.days():
            if d + SLIDING_DAYS - 1 >= today:
                due.append((max(d, today) + 1) * DAY_MS - 1)  # its day window, or a 7-day window holding it
            last = month_bounds(d)[1] - 1
            if last >= today:
                due.append((last + 1) * DAY_MS - 1)
        return min(due) if due else None

    def _apply(self, state: LearnerState, learner: str, answer: Answer) -> Iterator[tuple[str, Out]]:
        day = day_index(answer.answered_at_ms)
        members = state.day_get(day)
        if members is None:
            members = []
        elif any(a.answer_id == answer.answer_id for a in members):
            self._count("duplicates")
            return
        # Answers enter in window order, so every window is a run of consecutive answers of this stream.
        stream = state.stream() or MattrPrefix()
        answer = replace(answer, position=stream.append(answer.words))
        state.set_stream(stream)
        members.append(answer)
        state.day_put(day, members)
        self._count("answers")
        window = [*state.recent(), answer]
        yield from self._emit(learner, last_n_window(window), window, stream)
        state.set_recent(window[max(0, len(window) - self.last_n + 1) :] if self.last_n > 1 else [])

    def _close_day(self, state: LearnerState, learner: str, day: int) -> Iterator[tuple[str, Out]]:
        stream = state.stream() or MattrPrefix()
        members = state.day_get(day)
        if members:
            yield from self._emit(learner, day_window(day), members, stream)
        week = [a for d in range(day - SLIDING_DAYS + 1, day + 1) for a in (state.day_get(d) or ())]
        if week:
            yield from self._emit(learner, sliding_window_ending(day), week, stream)
        first, following = month_bounds(day)
        if following == day + 1:
            month = [a for d in range(first, following) for a in (state.day_get(d) or ())]
            if month:
                yield from self._emit(learner, month_window(day), month, stream)
        # Keep the days a later 7-day window or the current month still needs.
        keep_from = min(day + 1 - SLIDING_DAYS + 1, month_bounds(day + 1)[0])
        removed = False
        for d in state.days():
            if d < keep_from:
                state.day_remove(d)
                removed = True
        if removed:
            # Only answers still in a kept day or the last-N window can start a window from now on.
            starts = [a.position for d in state.days() for a in (state.day_get(d) or ())[:1]]
            starts += [a.position for a in state.recent()[:1]]
            stream.forget_before(min(starts, default=stream.length))
            state.set_stream(stream)

    def _emit(
        self, learner: str, window: Window, answers: list[Answer], stream: MattrPrefix
    ) -> Iterator[tuple[str, Out]]:
        end = answers[-1].position + len(answers[-1].words)
        metrics, vocabulary = window_events(learner, window, answers, stream.windows_sum(answers[0].position, end))
        yield "main", as_out(self.topics.windowed_metrics, metrics)
        yield "main", as_out(self.topics.vocabulary, vocabulary)
