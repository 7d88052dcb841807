"""PyFlink answer job. The per-answer logic lives in the core (`flink_jobs.answers.pipeline.AnswerProcessor`); this file
wires it between the Kafka source and sink and loads the models once per Python worker, in `open()`.

    python -m flink_jobs.answers            # local MiniCluster, or SC_FLINK__JOBMANAGER for a remote cluster
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Configuration, Row, WatermarkStrategy
from pyflink.datastream import FlatMapFunction, RuntimeContext

from flink_jobs.common import (
    OUTPUT_TYPE,
    environment,
    job_paths,
    kafka_sink,
    kafka_source,
    latest_checkpoint,
    output,
    run_until_stopped,
)
from speech_coach.contracts.events import DeadLetter, FeedbackResult
from speech_coach.contracts.topics import Topic
from speech_coach.kafka import ensure_topics
from speech_coach.logging import configure_logging, get_logger
from speech_coach.rejections import RejectionReason
from speech_coach.settings import Settings, get_settings

JOB = "answers"
CONTRACT_REASONS = (
    "contract.not_json",
    "contract.not_object",
    "contract.wrong_type",
    "contract.unsupported_version",
    "contract.invalid",
)
log = get_logger("flink_jobs.answers")


# Stages timed per answer (AnswerProcessor.timings keys) and the names their Flink metrics carry.
STAGES = {"fetch": "download", "decode": "decode", "vad": "vad", "transcribe": "transcribe", "feedback": "feedback"}
METRIC_GROUP = "speech_coach_answers"
COUNTERS = (
    [
        "records_in",
        "records_out",
        "ok",
        "rejected",
        "fallback",
        "dead_letter",
        *(r.value for r in RejectionReason),
        *CONTRACT_REASONS,
    ]
    + [f"{stage}_ms_sum" for stage in STAGES.values()]
    + [f"{stage}_count" for stage in STAGES.values()]
)
GAUGES = ["model_load_ms"]


def prometheus_names() -> set[str]:
    """The job's own metrics as Flink's Prometheus reporter names them (counters are exported as gauges)."""
    prefix = f"flink_taskmanager_job_task_operator_{METRIC_GROUP}_"
    return {prefix + name.replace(".", "_") for name in [*COUNTERS, *GAUGES]}


class ProcessAnswer(FlatMapFunction):  # type: ignore[misc]
    """One raw-answer record in, its output events out (feedback + metrics, or rejection + dead letter)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.processor: Any = None
        self.counters: dict[str, Any] = {}
        self.process_ms: Any = None
        self.model_load_ms = 0
        self.announced = False

    def open(self, runtime_context: RuntimeContext) -> None:
        from flink_jobs.answers.pipeline import AnswerProcessor
        from speech_coach.observability import setup_tracing

        configure_logging(self.settings.log.level, self.settings.log.json_output, self.settings.secret_values())
        setup_tracing(self.settings, "speech-coach-answer-job")  # in the Python worker, where the spans are made
        began = time.monotonic()
        self.processor = AnswerProcessor(self.settings)
        self.processor.open()  # models, VAD session, question bank: once per worker
        self.model_load_ms = int((time.monotonic() - began) * 1000)
        # Flink metrics, exported by Flink's Prometheus reporter (the cluster's, or locally the job process's
        # /metrics): flink_taskmanager_job_task_operator_speech_coach_answers_<name>. Registered up front so
        # every series exists, at 0, from the first answer on.
        group = runtime_context.get_metrics_group().add_group(METRIC_GROUP)
        self.counters = {name: group.counter(name.replace(".", "_")) for name in COUNTERS}
        self.process_ms = group.distribution("process_ms")
        group.gauge("model_load_ms", lambda: self.model_load_ms)
        log.info("answer worker ready", seconds=round(self.model_load_ms / 1000, 2))

    def close(self) -> None:
        from speech_coach.observability.tracing import shutdown_tracing

        shutdown_tracing()  # spans still buffered leave before the worker does

    def flat_map(self, value: bytes) -> Iterator[Row]:
        if not self.announced:
            # Python counters reach Flink only once touched inside a bundle: touch them all on the first record,
            # so rare ones (fallback, *_unavailable) exist at 0 for dashboards and alerts instead of being absent.
            for counter in self.counters.values():
                counter.inc(0)
            self.announced = True
        self.counters["records_in"].inc()
        began = time.perf_counter()
        events = self.processor.process(bytes(value))
        self.process_ms.update(int((time.perf_counter() - began) * 1000))
        for stage, seconds in self.processor.timings.stages.items():
            if (name := STAGES.get(stage)) is not None:
                self.counters[f"{name}_ms_sum"].inc(int(seconds * 1000))
                self.counters[f"{name}_count"].inc()
        for event in events:
            self._count(event)
            self.counters["records_out"].inc()
            yield output(self.settings, event)

    def _count(self, event: Any) -> None:
        if isinstance(event, FeedbackResult):
            self.counters[event.status.value].inc()
            if event.engine is not None and event.engine.fallback:
                self.counters["fallback"].inc()
        elif isinstance(event, DeadLetter):
            self.counters["dead_letter"].inc()
            if (counter := self.counters.get(event.reason)) is not None:
                counter.inc()


def preflight(settings: Settings) -> None:
    """Fail before submitting when the model or ffmpeg is unusable, with the fix in the message."""
    from speech_coach.speech.transcribe import check_model, model_dir
    from speech_coach.tools import find_ffmpeg

    check_model(model_dir(settings), settings.transcription.model_sha256)
    find_ffmpeg(settings)


def build(settings: Settings) -> Any:
    env = environment(settings, JOB)
    # One answer per bundle: its results leave the worker when it is done, not when a bundle of several
    # multi-second answers is (a queue would otherwise hold back every learner's feedback until the last one's).
    conf = Configuration()
    conf.set_string("python.fn-execution.bundle.size", "1")
    env.configure(conf)
    source = kafka_source(settings, [Topic.RAW_ANSWERS], settings.answers.group_id)
    (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "raw-answers")
        .flat_map(ProcessAnswer(settings), output_type=OUTPUT_TYPE)
        .name("transcribe-and-feedback")
        .sink_to(kafka_sink(settings))
        .name("feedback-metrics-dead-letters")
    )
    return env


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log.level, settings.log.json_output, settings.secret_values())
    preflight(settings)
    ensure_topics(settings, [Topic.RAW_ANSWERS, Topic.FEEDBACK, Topic.ANSWER_METRICS, Topic.DEAD_LETTERS])
    checkpoint = latest_checkpoint(job_paths(settings, JOB).local_checkpoints)
    env = build(settings)
    client = env.execute_async("speech-coach-answers")
    log.info(
        "answer job submitted",
        job_id=str(client.get_job_id()),
        transcription=settings.transcription.engine,
        feedback=settings.feedback.engine,
        restored_from=str(checkpoint) if checkpoint else None,
    )
    run_until_stopped(settings, JOB, client)


if __name__ == "__main__":
    main()
