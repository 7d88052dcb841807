"""The metrics_floor benchmark's minimal PyFlink jobs: `python -m benchmarks.floor_jobs VARIANT OUTPUT_TOPIC`.

    java:     feedback topic -> Kafka sink of the same bytes (no Python function)
    identity: feedback topic -> Python map returning its input bytes unchanged -> Kafka sink
    analyze:  feedback topic -> Python map: decode the FeedbackResult, `speech_coach.text.analyze` its transcript,
              emit one small record (answer id, lexical metrics as JSON) -> the jobs' row sink (`kafka_sink`)

Built with the real jobs' helpers (flink_jobs.common): the same environment (checkpoints, at-least-once, Python
worker settings), Kafka source and producer settings; Python functions in process mode, one worker per subtask,
as the metrics job runs them. No windows, no state, no watermarks.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from pyflink.common import Row, Types, WatermarkStrategy
from pyflink.datastream import MapFunction, RuntimeContext

from flink_jobs.common import OUTPUT_TYPE, environment, kafka_bytes_sink, kafka_sink, kafka_source, run_until_stopped
from speech_coach.contracts.events import FeedbackResult, decode_as
from speech_coach.contracts.topics import Topic
from speech_coach.logging import configure_logging, get_logger
from speech_coach.settings import get_settings

VARIANTS = ("java", "identity", "analyze")
log = get_logger(__name__)


def identity(value: bytes) -> bytes:
    return value


class Analyze(MapFunction):  # type: ignore[misc]
    """Feedback bytes -> Row(topic, answer id, the transcript's lexical metrics as JSON)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic

    def open(self, runtime_context: RuntimeContext) -> None:
        from speech_coach.text import warm_up

        warm_up()

    def map(self, value: bytes) -> Row:
        from speech_coach.text import analyze

        event = decode_as(FeedbackResult, bytes(value))
        lex = analyze(event.transcript)
        small = {name: getattr(lex, name) for name in ("tokens", "types", "ttr", "mattr", "mtld", "hdd")}
        return Row(self.topic, event.answer_id.encode(), json.dumps(small).encode())


def build(variant: str, output_topic: str) -> Any:
    settings = get_settings()
    # As the metrics job: each Python subtask in a worker process of its own (not threads of the driver).
    os.environ.setdefault("_python_worker_execution_mode", "process")
    env = environment(settings, f"floor-{variant}", restore=False)
    if settings.metrics.parallelism:
        env.set_parallelism(settings.metrics.parallelism)
    source = env.from_source(
        kafka_source(settings, [Topic.FEEDBACK], settings.metrics.group_id), WatermarkStrategy.no_watermarks(), "in"
    )
    if variant == "java":
        source.sink_to(kafka_bytes_sink(settings, output_topic)).name("out")
    elif variant == "identity":
        mapped = source.map(identity, output_type=Types.PRIMITIVE_ARRAY(Types.BYTE())).name("identity")
        mapped.sink_to(kafka_bytes_sink(settings, output_topic)).name("out")
    elif variant == "analyze":
        mapped = source.map(Analyze(output_topic), output_type=OUTPUT_TYPE).name("analyze")
        mapped.sink_to(kafka_sink(settings)).name("out")
    else:
        raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return settings, env


def main(argv: list[str]) -> None:
    variant, output_topic = argv
    settings, env = build(variant, output_topic)
    configure_logging(settings.log.level, settings.log.json_output, settings.secret_values())
    log.info("floor_job.starting", variant=variant, output=output_topic, parallelism=env.get_parallelism())
    client = env.execute_async(f"speech-coach-floor-{variant}")
    run_until_stopped(settings, f"floor-{variant}", client)


if __name__ == "__main__":
    main(sys.argv[1:])
