"""The metrics job's topology: Kafka (feedback + answer metrics) -> decode -> event time -> per learner -> Kafka.

    feedback, answer-metrics ─> decode, key by learner ─> watermarks (bounded out-of-orderness = lateness)
        ─> keyBy learner ─> LearnerWindows (join, order, last-N / day / 7-day / month windows)
        ─> windowed-metrics, vocabulary;  side outputs (undecodable, late, unmatched) ─> dead letters

Two Python operators in all: the decoding one (the timestamp extraction and the key chain into it) and the
keyed one; the key is computed in the first, so PyFlink's own key-selector operator, a third Python hop, is
not needed.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from pyflink.common import Duration, Row, Types, WatermarkStrategy
from pyflink.datastream import KeyedProcessFunction, OutputTag, ProcessFunction, RuntimeContext
from pyflink.datastream.data_stream import DataStream, KeyedStream
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.java_gateway import get_gateway

from flink_jobs.common import OUTPUT_TYPE, MetricsScope, environment, kafka_sink, kafka_source
from flink_jobs.metrics.pipeline import (
    Answer,
    LearnerState,
    LearnerWindows,
    Out,
    Pending,
    Topics,
    dead_letter,
    to_record,
)
from speech_coach.contracts.events import ContractError
from speech_coach.contracts.topics import Topic
from speech_coach.kafka import topic_name
from speech_coach.logging import get_logger
from speech_coach.settings import Settings
from speech_coach.text import MattrPrefix

log = get_logger(__name__)

INVALID = OutputTag("invalid", OUTPUT_TYPE)
LATE = OutputTag("late", OUTPUT_TYPE)
KEYED = Types.ROW([Types.STRING(), Types.PICKLED_BYTE_ARRAY()])
# Flink metric group of the job's counters: flink_taskmanager_job_task_operator_speech_coach_metrics_<name>.
METRIC_GROUP = "speech_coach_metrics"


def prometheus_names() -> set[str]:
    """The job's counters as Flink's Prometheus reporter names them."""
    from flink_jobs.metrics.pipeline import LearnerWindows

    prefix = f"flink_taskmanager_job_task_operator_{METRIC_GROUP}_"
    return {prefix + name for name in [*LearnerWindows.COUNTED, "invalid_records"]}


def topics(settings: Settings) -> Topics:
    return Topics(
        feedback=topic_name(settings, Topic.FEEDBACK),
        metrics=topic_name(settings, Topic.ANSWER_METRICS),
        windowed_metrics=topic_name(settings, Topic.WINDOWED_METRICS),
        vocabulary=topic_name(settings, Topic.VOCABULARY),
        dead_letters=topic_name(settings, Topic.DEAD_LETTERS),
    )


def _row(out: Out) -> Row:
    return Row(*out)


class Decode(ProcessFunction):  # type: ignore[misc]
    """Bytes -> Row(learner id, record); what fails its contract goes to the INVALID side output."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics

    def open(self, runtime_context: RuntimeContext) -> None:
        from speech_coach.text import warm_up

        warm_up()
        self.invalid = runtime_context.get_metrics_group().add_group(METRIC_GROUP).counter("invalid_records")

    def process_element(self, value: bytes, ctx: ProcessFunction.Context) -> Iterator[Any]:
        data = bytes(value)
        try:
            record = to_record(data)
        except ContractError as exc:
            self.invalid.inc()
            yield INVALID, _row(dead_letter(self.topics, data, exc.reason, str(exc)))
            return
        yield Row(record[0], record)


class FlinkLearnerState(LearnerState):
    """LearnerState over Flink keyed state, pickled, with the values read kept in this worker.

    Days are one map entry each, so adding an answer re-serializes one day, not the learner's month. Pending
    answers (a few, within the lateness) and the list of days are single values: PyFlink 2.3's MapState iteration
    returned entries removed earlier in the same bundle, which re-applied answers, so nothing here iterates a
    MapState.

    Every read of PyFlink keyed state is a blocking request to the JVM (its Python side caches state objects, not
    values), which made reads, not the metrics, the job's cost. So each learner's values are read once and kept in
    an LRU map here; every change still goes to Flink state, so checkpoints hold exactly what the cache holds. The
    cache lives in the function instance: a restart or restore opens a new one, which starts empty.
    """

    def __init__(self, ctx: RuntimeContext, cache_learners: int) -> None:
        pickled = Types.PICKLED_BYTE_ARRAY()
        self._pending = ctx.get_state(ValueStateDescriptor("pending", pickled))
        self._days = ctx.get_map_state(MapStateDescriptor("days", Types.LONG(), pickled))
        self._day_index = ctx.get_state(ValueStateDescriptor("day_index", pickled))
        self._recent = ctx.get_state(ValueStateDescriptor("recent", pickled))
        self._horizon = ctx.get_state(ValueStateDescriptor("horizon", Types.LONG()))
        self._stream = ctx.get_state(ValueStateDescriptor("stream", pickled))
        self._timer = ctx.get_state(ValueStateDescriptor("timer", Types.LONG()))
        self._limit = max(1, cache_learners)
        self._learners: OrderedDict[str, dict[Any, Any]] = OrderedDict()
        self._values: dict[Any, Any] = {}

    def bind(self, learner: str) -> None:
        """Use `learner`'s cached values (Flink has already made it the current key)."""
        values = self._learners.get(learner)
        if values is None:
            values = self._learners[learner] = {}
            if len(self._learners) > self._limit:
                self._learners.popitem(last=False)
        else:
            self._learners.move_to_end(learner)
        self._values = values

    def _get(self, name: str, state: Any) -> Any:
        if name in self._values:
            return self._values[name]
        value = self._values[name] = state.value()
        return value

    def _set(self, name: str, state: Any, value: Any) -> None:
        self._values[name] = value
        if value is None:
            state.clear()
        else:
            state.update(value)

    def _pending_map(self) -> dict[str, Pending]:
        value: dict[str, Pending] | None = self._get("pending", self._pending)
        return value if value is not None else {}

    def pending_get(self, answer_id: str) -> Pending | None:
        return self._pending_map().get(answer_id)

    def pending_put(self, answer_id: str, value: Pending) -> None:
        pending = self._pending_map()
        pending[answer_id] = value
        self._set("pending", self._pending, pending)

    def pending_items(self) -> list[tuple[str, Pending]]:
        return list(self._pending_map().items())

    def pending_remove(self, answer_id: str) -> None:
        pending = self._pending_map()
        pending.pop(answer_id, None)
        self._set("pending", self._pending, pending or None)

    def day_get(self, day: int) -> list[Answer] | None:
        if day not in self.days():  # never ask the JVM for a day that is not there
            return None
        key = ("day", day)
        if key not in self._values:
            self._values[key] = self._days.get(day)
        value: list[Answer] | None = self._values[key]
        return value

    def day_put(self, day: int, answers: list[Answer]) -> None:
        self._values[("day", day)] = answers
        self._days.put(day, answers)
        days = self.days()
        if day not in days:
            self._set("day_index", self._day_index, sorted([*days, day]))

    def day_remove(self, day: int) -> None:
        self._values.pop(("day", day), None)
        self._days.remove(day)
        self._set("day_index", self._day_index, [d for d in self.days() if d != day])

    def days(self) -> list[int]:
        value: list[int] | None = self._get("day_index", self._day_index)
        return value if value is not None else []

    def recent(self) -> list[Answer]:
        value: list[Answer] | None = self._get("recent", self._recent)
        return value or []

    def set_recent(self, answers: list[Answer]) -> None:
        self._set("recent", self._recent, answers)

    def horizon(self) -> int | None:
        value: int | None = self._get("horizon", self._horizon)
        return value

    def set_horizon(self, value: int) -> None:
        self._set("horizon", self._horizon, value)

    def stream(self) -> MattrPrefix | None:
        value: MattrPrefix | None = self._get("stream", self._stream)
        return value

    def set_stream(self, value: MattrPrefix) -> None:
        self._set("stream", self._stream, value)

    def timer(self) -> int | None:
        value: int | None = self._get("timer", self._timer)
        return value

    def set_timer(self, value: int | None) -> None:
        self._set("timer", self._timer, value)


class Windows(KeyedProcessFunction):  # type: ignore[misc]
    def __init__(self, topics: Topics, last_n: int, allowed_lateness_s: float, cache_learners: int) -> None:
        self.topics, self.last_n, self.allowed_lateness_s = topics, last_n, allowed_lateness_s
        self.cache_learners = cache_learners

    def open(self, runtime_context: RuntimeContext) -> None:
        from speech_coach.text import warm_up

        warm_up()
        self.logic = LearnerWindows(self.topics, self.last_n, self.allowed_lateness_s)
        # Exported as flink_taskmanager_job_task_operator_speech_coach_metrics_<name> (answers, late, ...).
        group = runtime_context.get_metrics_group().add_group(METRIC_GROUP)
        self.logic.on_count = {name: group.counter(f"{name}") for name in self.logic.COUNTED}
        self.state = FlinkLearnerState(runtime_context, self.cache_learners)
        self.metrics_scope = MetricsScope()

    def _out(self, items: Iterator[tuple[str, Out]]) -> Iterator[Any]:
        for tag, out in items:
            yield (_row(out) if tag == "main" else (LATE, _row(out)))

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        register: list[int] = []
        timers = ctx.timer_service()
        self.metrics_scope.capture()
        self.state.bind(value[0])
        yield from self._out(self.logic.on_part(self.state, value, timers.current_watermark(), register))
        for ts in register:
            timers.register_event_time_timer(ts)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        register: list[int] = []
        timers = ctx.timer_service()
        # Everything up to the watermark, not just this timer's time (see LearnerWindows).
        now = max(timestamp, timers.current_watermark())
        learner = ctx.get_current_key()
        self.state.bind(learner)
        with self.metrics_scope:  # the answers, unmatched and rejected counts happen here
            out = list(self._out(self.logic.on_time(self.state, learner, now, register)))
        yield from out
        for ts in register:
            timers.register_event_time_timer(ts)


def _key_by_first_field(stream: DataStream) -> KeyedStream:
    # What DataStream.key_by does after its own Python key-selector step: partition by the Row's first field.
    gateway = get_gateway()
    j_keyed = stream._j_data_stream.keyBy(
        gateway.jvm.KeyByKeySelector(), Types.ROW([Types.STRING()]).get_java_type_info()
    )
    return KeyedStream(j_keyed, Types.PICKLED_BYTE_ARRAY(), stream)


def build(settings: Settings, *, restore: bool = True) -> Any:
    """The configured environment with the job's graph on it; `env.execute()` runs it."""
    # On a local MiniCluster PyFlink runs every Python operator in "loopback" mode: threads of this one process,
    # sharing one GIL, so parallelism 2 computed on one core. Process mode gives each subtask its own Python
    # worker (a real cluster's TaskManagers always do); PyFlink reads this variable when the job starts.
    os.environ.setdefault("_python_worker_execution_mode", "process")
    env = environment(settings, "metrics", restore=restore)
    if settings.metrics.parallelism:
        env.set_parallelism(settings.metrics.parallelism)
    names = topics(settings)
    # Event-time progress comes from the Kafka record timestamps, per partition inside the source (the
    # watermark is the minimum over partitions, so a backlog read faster on one partition cannot make another's
    # answers late). Producers stamp a record no earlier than its answered_at (publish time, or answered_at
    # itself); the windows and the lateness test use answered_at from the payload. PyFlink cannot run a Python
    # timestamp assigner inside the source, and one after it would see all partitions mixed.
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(int(settings.metrics.allowed_lateness_s * 1000))
    ).with_idleness(Duration.of_millis(int(settings.metrics.idle_timeout_s * 1000)))
    source = env.from_source(
        kafka_source(settings, [Topic.FEEDBACK, Topic.ANSWER_METRICS], settings.metrics.group_id), strategy, "answers"
    ).uid("answers")
    decoded = source.process(Decode(names), output_type=KEYED).name("decode").uid("decode")
    windows = (
        _key_by_first_field(decoded)
        .process(
            Windows(
                names, settings.metrics.last_n, settings.metrics.allowed_lateness_s, settings.metrics.cached_learners
            ),
            OUTPUT_TYPE,
        )
        .name("learner-windows")
        .uid("learner-windows")
    )
    outputs = windows.union(decoded.get_side_output(INVALID), windows.get_side_output(LATE))
    outputs.sink_to(kafka_sink(settings)).name("outputs").uid("outputs")
    return env
