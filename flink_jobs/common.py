"""What both Flink jobs share: the execution environment, Kafka source and sink, checkpoint recovery.

Records cross the job boundary as raw bytes (`ByteArraySchema`), so a payload that fails its contract still
reaches the job and becomes a dead letter with its original bytes, instead of failing inside the connector.
Outputs are rows of (topic, key, value): one sink serves every output topic, and the key keeps the platform's
partitioning and idempotency keys (answer id, learner window) that downstream consumers rely on.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from py4j.java_gateway import get_java_class
from pyflink.common import Configuration, Row, Types
from pyflink.common.serialization import ByteArraySchema, RowFieldExtractorSchema
from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import KafkaOffsetsInitializer, KafkaSink, KafkaSource
from pyflink.java_gateway import get_gateway

from flink_jobs.connectors import connector_jars
from speech_coach.contracts.events import Event, encode
from speech_coach.contracts.topics import Topic
from speech_coach.kafka import client_config, topic_name
from speech_coach.logging import get_logger
from speech_coach.observability import HealthServer
from speech_coach.settings import Settings
from speech_coach.tools import find_java

log = get_logger("flink_jobs")

# Flink metric reporter name in the local MiniCluster: metrics.reporter.<name>.*
LOCAL_REPORTER = "local_prometheus"
# How often the local MiniCluster pushes its metrics to the job process's /metrics.
LOCAL_REPORT_INTERVAL_S = 5

# (topic, key, value): the shape every job emits, written by `kafka_sink`.
OUTPUT_TYPE = Types.ROW_NAMED(
    ["topic", "key", "value"],
    [Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.PRIMITIVE_ARRAY(Types.BYTE())],
)


@dataclass(frozen=True)
class JobPaths:
    checkpoints: str  # URI for Flink
    local_checkpoints: Path | None  # the same, when it is a local directory we can search for recovery


def job_paths(settings: Settings, job: str) -> JobPaths:
    if settings.flink.checkpoint_dir:
        base = settings.flink.checkpoint_dir.rstrip("/")
        uri = f"{base}/{job}"
        local = Path(uri.removeprefix("file://")) if uri.startswith("file://") else None
        return JobPaths(uri, local)
    local = settings.state_dir / "flink" / "checkpoints" / job
    return JobPaths(local.as_uri(), local)


def latest_checkpoint(directory: Path | None) -> Path | None:
    """The newest completed checkpoint (one with `_metadata`) under a job's checkpoint directory."""
    if directory is None or not directory.is_dir():
        return None
    done = [m.parent for m in directory.glob("*/chk-*/_metadata")]
    if not done:
        return None
    return max(done, key=lambda p: (p.stat().st_mtime, int(p.name.removeprefix("chk-"))))


def health_port(settings: Settings, job: str) -> int:
    """Port of the job process's /healthz, /readyz and /metrics."""
    return settings.answers.health_port if job == "answers" else settings.metrics.health_port


def local_minicluster(settings: Settings) -> bool:
    """True when this process starts its own MiniCluster; false when submitting to, or started by, a cluster."""
    # PyFlink sets PYFLINK_GATEWAY_PORT when a JVM (a cluster's PythonDriver) started this Python process.
    return not settings.flink.jobmanager and "PYFLINK_GATEWAY_PORT" not in os.environ


def prometheus_reporter_jar() -> Path | None:
    """Flink's Prometheus reporter, shipped in the apache-flink wheel under pyflink/plugins."""
    import pyflink

    plugin = Path(pyflink.__file__).parent / "plugins" / "metrics-prometheus"
    jars = sorted(plugin.glob("flink-metrics-prometheus-*.jar"))
    return jars[-1] if jars else None


def _prepare_process_env(settings: Settings) -> None:
    """Java and the Python workers inherit this process's environment."""
    java = find_java(settings)
    os.environ["JAVA_HOME"] = str(java.home)
    if local_minicluster(settings) and (jar := prometheus_reporter_jar()) is not None:
        # The MiniCluster loads metric reporters from the JVM classpath only (not from plugins/), and PyFlink's
        # gateway launcher adds HADOOP_CLASSPATH to it: the one hook for a jar there. Must precede the launch.
        current = os.environ.get("HADOOP_CLASSPATH", "")
        if str(jar) not in current.split(os.pathsep):
            os.environ["HADOOP_CLASSPATH"] = os.pathsep.join(filter(None, [current, str(jar)]))
    # The Python UDF workers must import this project and its dependencies exactly as the driver does.
    paths = [p for p in sys.path if p and Path(p).exists()]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))


def environment(settings: Settings, job: str, *, restore: bool = True) -> StreamExecutionEnvironment:
    """A configured environment: connector jars, checkpoints retained on disk, restore from the latest one."""
    _prepare_process_env(settings)
    paths = job_paths(settings, job)
    conf = Configuration()
    conf.set_string("pipeline.name", f"speech-coach-{job}")
    conf.set_string("pipeline.jars", ";".join(j.as_uri() for j in connector_jars(settings)))
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("execution.checkpointing.dir", paths.checkpoints)
    # Kept after the process stops, so a restart (or a crash) resumes from the last checkpoint.
    conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    conf.set_string("execution.checkpointing.num-retained", "3")
    conf.set_string("restart-strategy.type", "fixed-delay")
    conf.set_string("restart-strategy.fixed-delay.attempts", str(settings.flink.restart_attempts))
    conf.set_string("restart-strategy.fixed-delay.delay", f"{int(settings.flink.restart_delay_s * 1000)} ms")
    # Small local footprint; a real cluster sizes its TaskManagers itself.
    conf.set_string("taskmanager.memory.managed.size", "64m")
    conf.set_string("python.fn-execution.bundle.time", "100")
    if restore and (chk := latest_checkpoint(paths.local_checkpoints)) is not None:
        conf.set_string("execution.state-recovery.path", chk.as_uri())
    if local_minicluster(settings):
        _local_metrics(conf, settings, job)
    if settings.flink.jobmanager:
        host, _, port = settings.flink.jobmanager.rpartition(":")
        conf.set_string("execution.target", "remote")
        conf.set_string("rest.address", host)
        conf.set_string("rest.port", port)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(settings.flink.parallelism)
    env.enable_checkpointing(int(settings.flink.checkpoint_interval_s * 1000), CheckpointingMode.AT_LEAST_ONCE)
    return env


def _local_metrics(conf: Configuration, settings: Settings, job: str) -> None:
    """Flink's own Prometheus reporter, in its push-gateway form, pushing to this process's health server.

    The pull form (PrometheusReporter) binds every interface and has no host option; the local stack stays on
    loopback. Metric names are the same as the pull reporter's that clusters use (flink_taskmanager_job_...).
    """
    if prometheus_reporter_jar() is None:
        return
    prefix = f"metrics.reporter.{LOCAL_REPORTER}"
    factory = "org.apache.flink.metrics.prometheus.PrometheusPushGatewayReporterFactory"
    conf.set_string(f"{prefix}.factory.class", factory)
    conf.set_string(f"{prefix}.hostUrl", f"http://127.0.0.1:{health_port(settings, job)}")
    conf.set_string(f"{prefix}.jobName", f"speech-coach-{job}")
    conf.set_string(f"{prefix}.randomJobNameSuffix", "false")
    conf.set_string(f"{prefix}.deleteOnShutdown", "false")
    conf.set_string(f"{prefix}.interval", f"{LOCAL_REPORT_INTERVAL_S} SECONDS")


def driver_metrics() -> tuple[Any, Any, Any]:
    """The job process's own metrics: a registry, the job-running gauge and the last-status-check gauge."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    running = Gauge("speech_coach_flink_job_running", "1 while the Flink job is RUNNING", ["job"], registry=registry)
    checked = Gauge(
        "speech_coach_flink_job_last_check_timestamp_seconds", "When the job's status was last read", ["job"],
        registry=registry,
    )  # fmt: skip
    return registry, running, checked


def run_until_stopped(
    settings: Settings, job: str, client: Any, *, on_status: Callable[[str], None] | None = None
) -> None:
    """Serve the job process's health and metrics while the submitted job runs; cancel it on SIGTERM/SIGINT.

    Liveness: this loop still polls the job. Readiness: the job is RUNNING. /metrics: the process's own
    registry plus what the local MiniCluster's Prometheus reporter pushes.
    """
    registry, running, checked = driver_metrics()
    state = {"status": "CREATED"}
    health = HealthServer(
        settings.telemetry.bind_host,
        health_port(settings, job),
        ready_checks={"job": lambda: None if state["status"] == "RUNNING" else f"job is {state['status']}"},
        stall_after_s=60.0,
        registry=registry,
        accept_pushes=True,
    )
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    with health:
        log.info("job health serving", job=job, health=health.address)
        while True:
            result = client.get_job_status().result()
            # A pyflink JobStatus enum: str() would give "JobStatus.RUNNING", its name is the status.
            status = str(getattr(result, "name", result))
            state["status"] = status
            running.labels(job).set(1 if status == "RUNNING" else 0)
            checked.labels(job).set(time.time())
            health.beat()
            if on_status is not None:
                on_status(status)
            if status in {"FAILED", "CANCELED", "FINISHED"}:
                log.error("job ended", job=job, status=status)
                raise SystemExit(1)
            if stop.wait(2):
                break
        log.info("stopping job", job=job)
        try:
            client.cancel().result()
        except Exception as exc:  # the MiniCluster may already be shutting down with this process
            log.warning("cancel failed", job=job, error=str(exc)[:300])


def recovered_from(env_config: Any) -> str | None:
    value = env_config.get_string("execution.state-recovery.path", "")
    return value or None


def _kafka_properties(settings: Settings) -> dict[str, str]:
    """The Java client's form of `client_config`'s TLS and SASL keys, for the jobs' Kafka sources and sinks."""
    conf = client_config(settings)
    props = {"security.protocol": str(conf["security.protocol"])}
    if settings.kafka.sasl_mechanism:
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if settings.kafka.sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        props |= {
            "sasl.mechanism": settings.kafka.sasl_mechanism,
            "sasl.jaas.config": f"{module} required username={_jaas_quote(settings.kafka.sasl_username)} "
            f"password={_jaas_quote(settings.kafka.sasl_password.get_secret_value())};",
        }
    if "ssl.ca.location" in conf:
        # librdkafka's CA file: the Java client reads the same PEM file as a truststore (KIP-651).
        props |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(conf["ssl.ca.location"])}
    return props


def _jaas_quote(value: str) -> str:
    # JAAS values are quoted strings with backslash escapes: a quote in a password must not end it.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _committed_else_earliest() -> KafkaOffsetsInitializer:
    # PyFlink names the shaded kafka-clients class of the SQL connector jar; the plain connector jar used here
    # has kafka-clients unshaded beside it, so build the initializer through the gateway.
    jvm = get_gateway().jvm
    strategy = jvm.org.apache.kafka.clients.consumer.OffsetResetStrategy.EARLIEST
    initializer = jvm.org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer
    return KafkaOffsetsInitializer(initializer.committedOffsets(strategy))


def kafka_source(settings: Settings, topics: list[Topic], group_id: str) -> KafkaSource:
    """Raw bytes from the given topics; resumes from the group's committed offsets, else the beginning."""
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap)
        .set_topics(*[topic_name(settings, t) for t in topics])
        .set_group_id(group_id)
        # Tansu reports "latest" wrongly, and nothing may be skipped anyway.
        .set_starting_offsets(_committed_else_earliest())
        .set_value_only_deserializer(ByteArraySchema())
        .set_property("commit.offsets.on.checkpoint", "true")
        .set_property("partition.discovery.interval.ms", "10000")
    )
    for key, value in _kafka_properties(settings).items():
        builder = builder.set_property(key, value)
    return builder.build()


def kafka_sink(settings: Settings) -> KafkaSink:
    """Writes OUTPUT_TYPE rows to their topic, with their key. At-least-once: consumers are idempotent by key."""
    # The topic is the row's first field, read in Java. PyFlink's own `set_topic_selector` would put a Python
    # map in front of the sink (one more Python round trip for every record the job emits), so the Java
    # schema is built through the gateway and handed to the Java sink builder directly.
    jvm = get_gateway().jvm
    selector = jvm.org.apache.flink.python.util.PythonConnectorUtils.createFirstColumnTopicSelector(
        get_java_class(jvm.org.apache.flink.connector.kafka.sink.TopicSelector)
    )
    serializer = (
        jvm.org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema.builder()
        .setTopicSelector(selector)
        .setKeySerializationSchema(RowFieldExtractorSchema(1)._j_serialization_schema)
        .setValueSerializationSchema(RowFieldExtractorSchema(2)._j_serialization_schema)
        .build()
    )
    return _sink(settings, serializer)


def kafka_bytes_sink(settings: Settings, topic: str) -> KafkaSink:
    """Writes raw byte records, unkeyed, to one topic: `kafka_sink`'s producer for a stream of bytes (benchmarks)."""
    serializer = (
        get_gateway()
        .jvm.org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema.builder()
        .setTopic(topic)
        .setValueSerializationSchema(ByteArraySchema()._j_serialization_schema)
        .build()
    )
    return _sink(settings, serializer)


def _sink(settings: Settings, serializer: Any) -> KafkaSink:
    """An at-least-once Kafka sink with the jobs' producer settings and the given Java record serializer."""
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(settings.kafka_bootstrap)
        .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
    )
    builder._j_builder.setRecordSerializer(serializer)
    producer = {
        "batch.size": str(settings.flink.sink_batch_bytes),
        "linger.ms": str(settings.flink.sink_linger_ms),
        "compression.type": settings.flink.sink_compression,
    }
    for key, value in (producer | _kafka_properties(settings)).items():
        builder = builder.set_property(key, value)
    return builder.build()


def output(settings: Settings, event: Event) -> Row:
    """An event as an OUTPUT_TYPE row for its own topic."""
    return Row(topic_name(settings, event.TOPIC), event.key(), encode(event))


class MetricsScope:
    """Lets a keyed function's timer callbacks update its metrics.

    PyFlink counts metric updates only inside an element's processing scope; `on_timer` runs outside it, so
    counter increments there were silently lost. The scope seen in the latest `process_element` is re-entered
    around timer callbacks (what Beam's `MetricsEnvironment.current_container` reads). A timer firing before any
    element reached this worker still counts nothing.
    """

    def __init__(self) -> None:
        self._state: Any = None

    def capture(self) -> None:
        from apache_beam.runners.worker import statesampler

        tracker = statesampler.get_current_tracker()
        self._state = tracker.current_state() if tracker is not None else None

    def __enter__(self) -> MetricsScope:
        if self._state is not None:
            self._state.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._state is not None:
            self._state.__exit__(None, None, None)
