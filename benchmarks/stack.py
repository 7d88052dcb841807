"""The local stack: start (cold and warm), stop, idle memory, and broker round-trip latency."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import psutil
from rich.console import Console
from rich.progress import Progress

from benchmarks.report import bar_chart, median, percentile, write_section
from control.stack import Stack
from control.stack.isolated import isolated_settings
from speech_coach.kafka import consumer_config, ensure_topics, producer_config

RUNS = 3
MESSAGES = 2000


def _rss_mb(stack: Stack) -> dict[str, float]:
    out = {}
    for part in stack.parts:
        rec = part.running()
        if rec is None:
            continue
        proc = psutil.Process(rec.pid)
        procs = [proc, *proc.children(recursive=True)]
        out[part.name] = sum(p.memory_info().rss for p in procs) / 2**20
    return out


def _round_trips(stack: Stack) -> tuple[list[float], float]:
    from confluent_kafka import Consumer, Producer

    topic = f"bench-{uuid.uuid4().hex[:8]}"
    producer = Producer(producer_config(stack.settings, **{"linger.ms": 0}))
    consumer = Consumer(consumer_config(stack.settings, group_id=topic))
    consumer.subscribe([topic])
    producer.produce(topic, value=b"warm-up")
    producer.flush(10)
    while (msg := consumer.poll(1)) is None or msg.error():
        pass
    latencies = []
    for _ in range(200):  # one message in flight at a time: end-to-end latency
        sent = time.perf_counter()
        producer.produce(topic, value=b"x" * 1024)
        producer.flush(10)
        while (msg := consumer.poll(1)) is None or msg.error():
            pass
        latencies.append((time.perf_counter() - sent) * 1000)
    started = time.perf_counter()
    for i in range(MESSAGES):  # throughput: produce a batch, consume it all
        producer.produce(topic, key=str(i % 8).encode(), value=b"x" * 1024)
    producer.flush(30)
    got = 0
    while got < MESSAGES:
        msg = consumer.poll(1)
        if msg is not None and not msg.error():
            got += 1
    rate = MESSAGES / (time.perf_counter() - started)
    consumer.close()
    return latencies, rate


def run(console: Console) -> None:
    cold, warm, stop = [], [], []
    rss: dict[str, float] = {}
    latencies: list[float] = []
    rate = 0.0
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as progress:
        task = progress.add_task("stack start/stop cycles", total=RUNS)
        for i in range(RUNS):
            settings = isolated_settings(Path(tmp) / f"state-{i}")
            stack = Stack(settings)
            cold.append(stack.up().seconds)
            if i == 0:
                ensure_topics(settings)
                rss = _rss_mb(stack)
                latencies, rate = _round_trips(stack)
            t = time.perf_counter()
            stack.down()
            stop.append(time.perf_counter() - t)
            warm.append(stack.up().seconds)
            stack.down()
            progress.advance(task)

    body = f"""
Command: `make bench` (or `python -m benchmarks stack`). {RUNS} cycles, each on a fresh state directory.

| measure | median | runs |
|---|---|---|
| `stack up`, empty state dir, until all four healthy | {median(cold):.1f} s | {", ".join(f"{v:.1f}" for v in cold)} |
| `stack up` after `down`, existing data | {median(warm):.1f} s | {", ".join(f"{v:.1f}" for v in warm)} |
| `stack down` | {median(stop):.1f} s | {", ".join(f"{v:.1f}" for v in stop)} |

Idle memory (RSS, process and children) right after start:

{bar_chart(sorted(rss.items(), key=lambda kv: -kv[1]), "MiB")}

Broker round trip (confluent-kafka producer to consumer, 1 KiB, one in flight, 200 messages):
p50 **{percentile(latencies, 0.5):.1f} ms**, p95 **{percentile(latencies, 0.95):.1f} ms**.
Throughput, {MESSAGES} messages of 1 KiB produced then consumed: **{rate:,.0f} messages/s**.

The round trip is dominated by the broker's fetch wait (about 250 ms per idle fetch with librdkafka's default
`fetch.wait.max.ms` of 500 ms against Tansu): it is a per-hop floor for end-to-end latency, not a throughput limit.

`stack down` is dominated by SeaweedFS: its filer waits 15 s for a graceful gRPC stop while the S3 gateway's
metadata subscription is open; the other servers stop in about 2 s.
"""
    write_section("stack", "Local stack", body)
    console.print(body)
