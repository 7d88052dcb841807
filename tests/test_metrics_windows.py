"""The metrics job's per-learner logic and window definitions, without Flink: a small event-time simulator
drives `LearnerWindows` as Flink would (watermark = newest time - lateness, timers in time order) and its
output must equal the batch recomputation (`speech_coach.windows.recompute`)."""

from __future__ import annotations

import base64
import copy
import heapq
import math
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from benchmarks.answer_events import START, answer_pair, generate
from flink_jobs.metrics.pipeline import Answer, LearnerState, LearnerWindows, Pending, Topics, to_record
from speech_coach.contracts.events import (
    DeadLetter,
    Event,
    FeedbackResult,
    ResultStatus,
    WindowedMetrics,
    WindowedVocabulary,
    WindowKind,
    decode,
    encode,
)
from speech_coach.text import MattrPrefix, pool
from speech_coach.windows import (
    DAY_MS,
    answer_from,
    comparable,
    from_ms,
    month_window,
    recompute,
    sliding_window_ending,
    to_ms,
)

TOPICS = Topics("fb", "am", "wm", "voc", "dlq")
TOPIC_OF = {"wm": "speech-coach.learners.windowed-metrics.v1", "voc": "speech-coach.learners.vocabulary.v1",
            "dlq": "speech-coach.dead-letters.v1"}  # fmt: skip


class DictState(LearnerState):
    def __init__(self) -> None:
        self.pending: dict[str, Pending] = {}
        self.day_map: dict[int, list[Answer]] = {}
        self.recent_list: list[Answer] = []
        self.horizon_value: int | None = None
        self.stream_value: MattrPrefix | None = None
        self.timer_value: int | None = None

    def pending_get(self, answer_id: str) -> Pending | None:
        return self.pending.get(answer_id)

    def pending_put(self, answer_id: str, value: Pending) -> None:
        self.pending[answer_id] = value

    def pending_items(self) -> list[tuple[str, Pending]]:
        return list(self.pending.items())

    def pending_remove(self, answer_id: str) -> None:
        del self.pending[answer_id]

    def day_get(self, day: int) -> list[Answer] | None:
        return self.day_map.get(day)

    def day_put(self, day: int, answers: list[Answer]) -> None:
        self.day_map[day] = answers

    def day_remove(self, day: int) -> None:
        del self.day_map[day]

    def days(self) -> list[int]:
        return list(self.day_map)

    def recent(self) -> list[Answer]:
        return list(self.recent_list)

    def set_recent(self, answers: list[Answer]) -> None:
        self.recent_list = list(answers)

    def horizon(self) -> int | None:
        return self.horizon_value

    def set_horizon(self, value: int) -> None:
        self.horizon_value = value

    def stream(self) -> MattrPrefix | None:
        # A copy, as Flink's pickled state gives: a change the logic forgets to store is lost here too.
        return copy.deepcopy(self.stream_value)

    def set_stream(self, value: MattrPrefix) -> None:
        self.stream_value = copy.deepcopy(value)

    def timer(self) -> int | None:
        return self.timer_value

    def set_timer(self, value: int | None) -> None:
        self.timer_value = value


class Simulator:
    """Flink's event-time semantics for one keyed operator, in memory."""

    def __init__(
        self, lateness_s: float = 300, last_n: int = 10, *, async_timers: bool = False, lose_every: int = 0
    ) -> None:
        # async_timers: like PyFlink, a timer registered in a callback reaches the timer queue only after the
        # current watermark advance, so it fires late (after later timers); and every timer fires twice.
        # lose_every: every n-th timer asked for never reaches the queue.
        self.async_timers = async_timers
        self.lose_every, self.asked, self.lost = lose_every, 0, 0
        self.deferred: list[tuple[str, list[int]]] = []
        self.logic = LearnerWindows(TOPICS, last_n, lateness_s)
        self.lateness_ms = int(lateness_s * 1000)
        self.states: dict[str, DictState] = defaultdict(DictState)
        self.timers: list[tuple[int, str]] = []
        self.known: set[tuple[int, str]] = set()
        self.watermark = -(2**63)
        self.newest = -(2**63)
        self.out: list[tuple[str, str, bytes, bytes]] = []  # (tag, topic, key, value)

    def _register(self, learner: str, times: list[int], *, now: bool = False) -> None:
        if self.async_timers and not now:
            self.deferred.append((learner, times))
            return
        for t in times:
            self.asked += 1
            if self.lose_every and self.asked % self.lose_every == 0:
                self.lost += 1
                continue
            if (t, learner) not in self.known:
                self.known.add((t, learner))
                heapq.heappush(self.timers, (t, learner))

    def _collect(self, items) -> None:  # type: ignore[no-untyped-def]
        for tag, (topic, key, value) in items:
            self.out.append((tag, topic, key, value))

    def feed(self, event: Event) -> None:
        record = to_record(encode(event))
        learner = record[0]
        register: list[int] = []
        self._collect(self.logic.on_part(self.states[learner], record, self.watermark, register))
        self._register(learner, register)
        self.newest = max(self.newest, record[1])
        self.advance(self.newest - self.lateness_ms - 1)

    def advance(self, watermark: int) -> None:
        if watermark <= self.watermark:
            return
        self.watermark = watermark
        while self.timers and self.timers[0][0] <= watermark:
            t, learner = heapq.heappop(self.timers)
            self.known.discard((t, learner))
            register: list[int] = []
            # As in PyFlink, a firing sees the watermark of the advance that fired it.
            self._collect(self.logic.on_time(self.states[learner], learner, watermark, register))
            self._register(learner, register)
            if self.async_timers and t > 0:
                self.deferred.append((learner, [t]))  # fires again
        for learner, times in self.deferred:
            self._register(learner, times, now=True)
        self.deferred.clear()

    def finish(self) -> None:
        self.advance(2**62 + len(self.out))

    def latest_by_key(self) -> dict[bytes, tuple[WindowedMetrics, WindowedVocabulary]]:
        metrics: dict[bytes, WindowedMetrics] = {}
        vocab: dict[bytes, WindowedVocabulary] = {}
        for tag, topic, key, value in self.out:
            if tag != "main":
                continue
            event = decode(TOPIC_OF[topic], value)
            if isinstance(event, WindowedMetrics):
                metrics[key] = event
            else:
                assert isinstance(event, WindowedVocabulary)
                vocab[key] = event
        assert metrics.keys() == vocab.keys()
        return {k: (metrics[k], vocab[k]) for k in metrics}

    def dead_letters(self) -> list[DeadLetter]:
        return [decode(TOPIC_OF[t], v) for tag, t, _, v in self.out if tag != "main"]  # type: ignore[misc]


def assert_same(got: dict, expected: dict) -> None:  # type: ignore[type-arg]
    assert got.keys() == expected.keys()
    for key, (metrics, vocabulary) in expected.items():
        assert comparable(got[key][0]) == comparable(metrics), key
        assert comparable(got[key][1]) == comparable(vocabulary), key


def test_stream_windows_equal_batch_recomputation_out_of_order() -> None:
    data = generate(learners=6, answers_per_learner=40, days=45, shuffle_s=240, lexical=False)
    sim = Simulator(lateness_s=300)
    for event in data.events:
        sim.feed(event)
    sim.finish()
    assert sim.dead_letters() == []
    answers = [answer_from(f, m) for f, m in zip(data.feedback, data.metrics, strict=True)]
    expected = recompute([a for a in answers if a is not None])
    kinds = {m.window_kind for m, _ in expected.values()}
    assert kinds == set(WindowKind)
    assert_same(sim.latest_by_key(), expected)
    assert sim.logic.counts["answers"] == 240


def test_timers_firing_late_or_twice_change_nothing() -> None:
    data = generate(learners=4, answers_per_learner=40, days=45, shuffle_s=240, lexical=False, seed=9)
    sim = Simulator(lateness_s=300, async_timers=True)
    for event in data.events:
        sim.feed(event)
    sim.finish()
    sim.finish()  # the re-registered timers
    assert sim.dead_letters() == []
    answers = [answer_from(f, m) for f, m in zip(data.feedback, data.metrics, strict=True)]
    assert_same(sim.latest_by_key(), recompute([a for a in answers if a is not None]))


def test_a_lost_timer_is_asked_for_again_at_the_learners_next_answer() -> None:
    # A learner whose wake-up was lost once stopped for good: every later answer found a wake-up already due
    # (the lost one) and asked for none, so none of their windows came out again (CI: 186 windows missing).
    data = generate(learners=4, answers_per_learner=40, days=45, shuffle_s=240, lexical=False, seed=5)
    sim = Simulator(lateness_s=300, lose_every=3)
    cut = len(data.events) * 4 // 5
    for event in data.events[:cut]:
        sim.feed(event)
    sim.lose_every = 0  # the last answers' wake-ups arrive: nothing after them could ask again
    for event in data.events[cut:]:
        sim.feed(event)
    sim.finish()
    assert sim.lost > 10 and sim.dead_letters() == []
    answers = [answer_from(f, m) for f, m in zip(data.feedback, data.metrics, strict=True)]
    assert_same(sim.latest_by_key(), recompute([a for a in answers if a is not None]))


def test_late_answers_go_to_the_side_output_and_are_counted() -> None:
    data = generate(learners=2, answers_per_learner=30, days=10, shuffle_s=0, lexical=False)
    sim = Simulator(lateness_s=60)
    rng = random.Random(3)
    late_fb, late_m = answer_pair(rng, "lrn-7-00000", "late-1", START + timedelta(days=3), "a very late answer")
    half = len(data.events) // 2
    for event in data.events[:half]:
        sim.feed(event)
    sim.feed(late_fb)
    sim.feed(late_m)
    for event in data.events[half:]:
        sim.feed(event)
    sim.finish()
    dead = sim.dead_letters()
    assert [(d.reason, d.answer_id, d.stage) for d in dead] == [("late", "late-1", "metrics.window")] * 2
    assert {d.source_topic for d in dead} == {"fb", "am"}
    # The original bytes are kept: each decodes again as the event it was.
    kept = {base64.b64decode(d.payload_b64) for d in dead}
    assert kept == {encode(late_fb), encode(late_m)}
    assert sim.logic.counts["late"] == 2
    answers = [answer_from(f, m) for f, m in zip(data.feedback, data.metrics, strict=True)]
    assert_same(sim.latest_by_key(), recompute([a for a in answers if a is not None]))


def test_duplicates_count_once_and_rejected_or_unmatched_answers_are_kept_apart() -> None:
    data = generate(learners=1, answers_per_learner=12, days=3, shuffle_s=0, lexical=False)
    sim = Simulator(lateness_s=60)
    rng = random.Random(5)
    rejected, rejected_m = answer_pair(rng, "lrn-7-00000", "rej-1", START + timedelta(hours=1), "noise")
    rejected = rejected.model_copy(update={"status": ResultStatus.REJECTED, "transcript": ""})
    lonely, _ = answer_pair(rng, "lrn-7-00000", "lonely-1", START + timedelta(hours=2), "no metrics ever came")
    events: list[Event] = [rejected, rejected_m, lonely]
    for i, event in enumerate(data.events):
        events.append(event)
        if i % 5 == 0:
            events.append(event.model_copy(update={"event_id": f"redelivered-{i}"}))  # a producer retry
    for event in sorted(events, key=lambda e: e.answered_at):  # type: ignore[attr-defined]
        sim.feed(event)
    sim.feed(data.events[0])  # a redelivery long after its windows closed: a duplicate, not late data
    sim.finish()
    assert [(d.reason, d.answer_id) for d in sim.dead_letters()] == [("unmatched", "lonely-1")]
    assert sim.logic.counts["rejected"] == 1 and sim.logic.counts["duplicates"] == 1
    answers = [answer_from(f, m) for f, m in zip(data.feedback, data.metrics, strict=True)]
    assert_same(sim.latest_by_key(), recompute([a for a in answers if a is not None]))


def _answer(learner: str, n: int, at: datetime, words: str) -> Answer:
    return Answer(f"a{n}", learner, to_ms(at), tuple(words.split()), float(n), 100.0 + n, None)


def test_window_definitions_by_hand() -> None:
    # Three answers: two on 30 Nov, one on 1 Dec (UTC); a last-2 window to keep the example small.
    t = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    a1 = _answer("l", 1, t, "the cat sat")
    a2 = _answer("l", 2, t + timedelta(minutes=30), "the dog sat")
    a3 = _answer("l", 3, t + timedelta(hours=2), "a bird flew")
    out = recompute([a3, a1, a2, a2], last_n=2)
    by = {(m.window_kind, m.window_start): m for m, _ in out.values()}
    vocab = {(v.window_kind, v.window_start): v.words for _, v in out.values()}
    # last-2: [a1] then [a1, a2] share the start a1 (the second replaces the first), then [a2, a3]
    last = {k: m for k, m in by.items() if k[0] == WindowKind.LAST_10}
    assert sorted(k[1] for k in last) == [t, t + timedelta(minutes=30)]
    first = last[(WindowKind.LAST_10, t)]
    assert (first.answer_count, first.window_end) == (2, t + timedelta(minutes=30))
    assert first.pooled_ttr == 4 / 6  # the, cat, sat, dog over 6 tokens
    assert first.pooled_root_ttr == 4 / math.sqrt(6) == pytest.approx(1.6329932)  # Guiraud: 4 types / √6 tokens
    assert first.mean_score == 1.5 and first.mean_speaking_rate_wpm == 101.5 and first.mean_time_to_answer_s is None
    assert vocab[(WindowKind.LAST_10, t)] == {"the": 2, "cat": 1, "sat": 2, "dog": 1}
    # day windows: 30 Nov holds a1, a2; 1 Dec holds a3
    nov30 = datetime(2026, 11, 30, tzinfo=UTC)
    assert by[(WindowKind.DAY, nov30)].answer_count == 2
    assert by[(WindowKind.DAY, nov30)].window_end == nov30 + timedelta(days=1)
    assert by[(WindowKind.DAY, nov30 + timedelta(days=1))].answer_count == 1
    # months: November (a1, a2), December (a3)
    assert by[(WindowKind.MONTH, datetime(2026, 11, 1, tzinfo=UTC))].answer_count == 2
    dec = by[(WindowKind.MONTH, datetime(2026, 12, 1, tzinfo=UTC))]
    assert (dec.answer_count, dec.window_end) == (1, datetime(2027, 1, 1, tzinfo=UTC))
    # 7-day windows ending each day from 30 Nov to 7 Dec: 8 of them; those ending 30 Nov hold 2, then 3, ...
    weeks = sorted((m.window_end, m.answer_count) for k, m in by.items() if k[0] == WindowKind.SLIDING_7D)
    assert len(weeks) == 8
    assert weeks[0] == (nov30 + timedelta(days=1), 2)
    assert weeks[1] == (nov30 + timedelta(days=2), 3)
    assert weeks[-1] == (nov30 + timedelta(days=8), 1)  # 1..7 Dec: a3 only
    week = by[(WindowKind.SLIDING_7D, nov30 - timedelta(days=5))]
    assert week.pooled_mattr == pool([a1.words, a2.words, a3.words]).pooled_mattr
    assert week.pooled_root_ttr == 7 / 3  # the cat sat the dog sat a bird flew: 7 types, 9 tokens


def test_every_pooled_contract_field_is_computed_by_pool() -> None:
    # window_events copies each `pooled_*` field of WindowedMetrics from `pool`'s result by name.
    from speech_coach.text import WindowLexicalMetrics
    from speech_coach.windows import POOLED_FIELDS

    assert "pooled_mtld" in POOLED_FIELDS
    missing = [name for name in POOLED_FIELDS if name not in WindowLexicalMetrics.__dataclass_fields__]
    assert not missing, f"WindowedMetrics fields that speech_coach.text.pool does not compute: {missing}"


@pytest.mark.parametrize("day", ["2026-12-31", "2027-02-28", "2028-02-29", "2026-01-01"])
def test_month_and_week_boundaries(day: str) -> None:
    moment = datetime.fromisoformat(day).replace(tzinfo=UTC)
    d = to_ms(moment) // DAY_MS
    month = month_window(d)
    assert from_ms(month.start_ms) == moment.replace(day=1)
    assert from_ms(month.start_ms) <= moment < from_ms(month.end_ms)
    assert from_ms(month.end_ms).day == 1
    week = sliding_window_ending(d)
    assert from_ms(week.end_ms) - from_ms(week.start_ms) == timedelta(days=7)
    assert from_ms(week.end_ms) == moment + timedelta(days=1)


def test_undecodable_input_is_refused_with_the_contracts_reason() -> None:
    from speech_coach.contracts.events import ContractError

    with pytest.raises(ContractError) as exc:
        to_record(b'{"event_type": "feedback_result", "schema_version": 1}')
    assert exc.value.reason == "contract.invalid"
    fb, _ = answer_pair(random.Random(1), "l", "a", START, "hello there")
    assert isinstance(decode("speech-coach.answers.feedback.v1", encode(fb)), FeedbackResult)


@pytest.mark.parametrize("event_type", ["feedback_result", "answer_metrics"])
@pytest.mark.parametrize(
    ("template", "reason"),
    [
        (b"\xff\xfe{not json", "contract.not_json"),
        (b"[1, 2, 3]", "contract.not_object"),
        (b'{"event_type": "%s", "schema_version": 7}', "contract.unsupported_version"),
        (b'{"event_type":"%s","schema_version":2,"answer_id":"a"}', "contract.unsupported_version"),  # fast path
        (b'{"event_type": "%s", "schema_version": 1, "learner_id": 5}', "contract.invalid"),
    ],
)
def test_bad_records_on_both_input_topics_become_dead_letters_with_their_reason(
    event_type: str, template: bytes, reason: str
) -> None:
    # What the job's Decode operator does with a record that fails its contract: a dead letter, bytes intact.
    from flink_jobs.metrics.pipeline import dead_letter
    from speech_coach.contracts.events import ContractError, DeadLetter, decode_as

    data = template.replace(b"%s", event_type.encode())
    with pytest.raises(ContractError) as failed:
        to_record(data)
    assert failed.value.reason == reason
    topic, _key, value = dead_letter(TOPICS, data, failed.value.reason, str(failed.value))
    letter = decode_as(DeadLetter, value)
    assert topic == "dlq" and letter.reason == reason and base64.b64decode(letter.payload_b64) == data
    assert letter.detail and letter.stage == "metrics.window"
    if b"%s" in template:  # the payload names its event: the dead letter names the topic it came from
        assert letter.source_topic == {"feedback_result": "fb", "answer_metrics": "am"}[event_type]


def test_state_pickled_before_the_module_was_renamed_still_loads() -> None:
    """Checkpoints and savepoints written by the job before `functions.py` became `pipeline.py` hold pickles that
    name the old module; a job restored from one must read them."""
    import pickle

    from flink_jobs.metrics.pipeline import Pending

    Pending.__module__ = "flink_jobs.metrics.functions"  # pickled as the job did before the rename
    try:
        old = pickle.dumps(Pending(answered_at_ms=7))
    finally:
        Pending.__module__ = "flink_jobs.metrics.pipeline"
    assert b"flink_jobs.metrics.functions" in old
    assert pickle.loads(old) == Pending(answered_at_ms=7)  # noqa: S301 - our own bytes
