"""Run the metrics job as `python -m flink_jobs.metrics` against a stack, feed it, and read what it wrote.

Shared by the job's tests (tests/test_metrics_job.py) and its benchmarks (metrics_job, metrics_floor). The job is
a child process in its own process group, so a test can kill -9 all of it (JVM and Python workers) the way a
crashed pod dies. `cpu_seconds` and `rss_mb` account a running job's processes, and its stack's broker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from confluent_kafka import Consumer, Producer

from control.stack import Stack
from control.stack.isolated import free_port_block, isolated_settings, settings_env
from speech_coach.contracts.events import DeadLetter, Event, WindowedMetrics, WindowedVocabulary, decode, encode
from speech_coach.contracts.topics import Topic
from speech_coach.kafka import consumer_config, ensure_topics, producer_config, topic_name
from speech_coach.settings import Settings
from speech_coach.windows import to_ms

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = (Topic.WINDOWED_METRICS, Topic.VOCABULARY, Topic.DEAD_LETTERS)


def job_settings(base: Settings, workdir: Path, **metrics: object) -> Settings:
    """The stack's settings with topics, consumer group and checkpoints of their own."""
    prefix = f"mj{uuid.uuid4().hex[:8]}."
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"topic_prefix": prefix, "default_partitions": 2}),
            "flink": base.flink.model_copy(
                update={"checkpoint_dir": (workdir / "checkpoints").as_uri(), "checkpoint_interval_s": 2.0}
            ),
            "metrics": base.metrics.model_copy(
                update={"group_id": f"metrics-{prefix}", "idle_timeout_s": 5.0, "parallelism": 1} | metrics
            ),
        }
    )


def job_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    return env | settings_env(settings) | {
        "SC_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "SC_KAFKA__DEFAULT_PARTITIONS": str(settings.kafka.default_partitions),
        "SC_FLINK__CHECKPOINT_DIR": settings.flink.checkpoint_dir,
        "SC_FLINK__CHECKPOINT_INTERVAL_S": str(settings.flink.checkpoint_interval_s),
        "SC_METRICS__GROUP_ID": settings.metrics.group_id,
        "SC_METRICS__ALLOWED_LATENESS_S": str(settings.metrics.allowed_lateness_s),
        "SC_METRICS__IDLE_TIMEOUT_S": str(settings.metrics.idle_timeout_s),
        "SC_METRICS__PARALLELISM": str(settings.metrics.parallelism),
        "SC_METRICS__LAST_N": str(settings.metrics.last_n),
        "SC_LOG__JSON_OUTPUT": "false",
    }  # fmt: skip


class Job:
    """One run of a job process: `python -m <module> <args>`, the metrics job unless told otherwise."""

    def __init__(
        self, settings: Settings, log: Path, *, module: str = "flink_jobs.metrics", args: Sequence[str] = ()
    ) -> None:
        self.settings, self.log = settings, log
        ensure_topics(settings, [Topic.FEEDBACK, Topic.ANSWER_METRICS, *OUTPUTS])
        self.started = time.monotonic()
        # A health port picked now, not when the stack's settings were made: a port free minutes ago may meanwhile
        # be some client connection's ephemeral port.
        self.health_port = free_port_block(1)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                cwd=ROOT,
                env=job_env(settings) | {"SC_METRICS__HEALTH_PORT": str(self.health_port)},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 the whole process group: the driver, the JVM and the Python workers."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


BROKER = "broker (Tansu + S3)"


def broker_pids(stack: Stack) -> list[int]:
    """The stack's own broker and object store (Tansu's storage), not those of other stacks on the machine."""
    return [running.pid for part in (stack.kafka, stack.s3) if (running := part.running()) is not None]


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(job_pid: int, brokers: Sequence[int]) -> dict[str, float]:
    """CPU seconds so far of a job's JVM, its Python workers and driver, and of the broker (`broker_pids`)."""
    out: dict[str, float] = {"JVM": 0.0, "Python workers": 0.0, "driver": 0.0, BROKER: 0.0}
    procs: list[tuple[str, psutil.Process]] = []
    for proc in _tree(job_pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            cmd = " ".join(proc.cmdline())
            kind = "JVM" if "java" in proc.name() else "Python workers" if "beam_boot" in cmd else "driver"
            procs.append((kind, proc))
    procs += [(BROKER, proc) for pid in brokers for proc in _tree(pid)]
    for kind, proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            out[kind] += times.user + times.system
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants (a job: driver, JVM, Python workers)."""
    total = 0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / 2**20


def produce(settings: Settings, events: Sequence[Event], published_ms: Sequence[int] | None = None) -> int:
    """Publish events with their Kafka record timestamps: `published_ms`, else each event's answered_at."""
    producer = Producer(producer_config(settings, **{"linger.ms": 20, "batch.num.messages": 5000}))
    for n, event in enumerate(events):
        stamp = published_ms[n] if published_ms is not None else to_ms(event.answered_at)  # type: ignore[attr-defined]
        producer.produce(topic_name(settings, event.TOPIC), key=event.key(), value=encode(event), timestamp=stamp)
        if n % 5000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    return len(events)


@dataclass
class Collected:
    metrics: list[tuple[float, WindowedMetrics]] = field(default_factory=list)  # (arrival, event)
    vocabulary: list[tuple[float, WindowedVocabulary]] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)

    def latest(self) -> dict[bytes, tuple[WindowedMetrics, WindowedVocabulary]]:
        """The output after deduplication by key: the last event per key wins (what ClickHouse FINAL keeps)."""
        metrics = {e.key(): e for _, e in self.metrics}
        vocabulary = {e.key(): e for _, e in self.vocabulary}
        return {k: (m, vocabulary[k]) for k, m in metrics.items() if k in vocabulary}


class Reader:
    """Reads the job's output topics from the beginning, accumulating into `collected`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.names = {topic_name(settings, t): t for t in OUTPUTS}
        # Subscribed before they exist, librdkafka would only see them at its next metadata refresh (minutes).
        ensure_topics(settings, OUTPUTS)
        group = f"reader-{uuid.uuid4().hex[:8]}"
        self.consumer = Consumer(consumer_config(settings, group, **{"enable.partition.eof": False}))
        self.consumer.subscribe(list(self.names))
        self.collected = Collected()

    def poll(self, seconds: float) -> int:
        got = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            messages = self.consumer.consume(5000, timeout=min(0.5, max(0.01, deadline - time.monotonic())))
            now = time.time()
            for msg in messages:
                if msg.error():
                    continue
                event = decode(self.names[msg.topic()], msg.value())
                got += 1
                if isinstance(event, WindowedMetrics):
                    self.collected.metrics.append((now, event))
                elif isinstance(event, WindowedVocabulary):
                    self.collected.vocabulary.append((now, event))
                else:
                    assert isinstance(event, DeadLetter)
                    self.collected.dead_letters.append(event)
        return got

    def close(self) -> None:
        self.consumer.close()


def on_private_stack(prefix: str, measure: Callable[[Settings, Path, list[int]], None]) -> None:
    """Run `measure(settings, workdir, broker pids)` on a local stack of its own, stopped afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        base = isolated_settings(Path(tmp) / "state")
        stack = Stack(base)
        stack.up()
        try:
            measure(base, Path(tmp), broker_pids(stack))
        finally:
            stack.down()
