"""The metrics job end to end through Kafka: throughput on a pre-loaded backlog, and window-result latency.

A private local stack; `python -m flink_jobs.metrics` as a real process (local MiniCluster). Throughput: ANSWERS
answers (feedback + answer metrics, 120-word transcripts) are published first, then the job starts and reads the
backlog; the rate is taken from the arrival times of the last-N window results (one per answer). Latency: with
the job caught up, one answer is published, then the records that move the watermark past it (one per input
partition); the time from those to the answer's last-N result on the output topic.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from confluent_kafka import Producer
from rich.console import Console
from rich.progress import Progress

from benchmarks.answer_events import START, answer_pair, generate
from benchmarks.metrics_harness import OUTPUTS, Job, Reader, job_settings, produce
from benchmarks.report import bar_chart, median, percentile, write_section
from speech_coach.contracts.events import WindowKind, encode
from speech_coach.contracts.topics import Topic
from speech_coach.kafka import ensure_topics, producer_config, topic_name
from speech_coach.stack import Stack
from speech_coach.stack.isolated import isolated_settings
from speech_coach.windows import SLIDING_DAYS, day_index, month_bounds, to_ms

ANSWERS = int(os.environ.get("SC_BENCH_METRICS_ANSWERS", "12000"))
LEARNERS = 400
DAYS = 30
LATENESS_S = 600.0
LATENCY_ROUNDS = 12
PARALLELISM = int(os.environ.get("SC_BENCH_METRICS_PARALLELISM", "2"))


def expected_windows(data_metrics: list) -> int:  # type: ignore[type-arg]
    """How many window results the backlog closes: one last-N per answer, plus day, 7-day and month windows."""
    days: dict[str, set[int]] = {}
    for m in data_metrics:
        days.setdefault(m.learner_id, set()).add(day_index(to_ms(m.answered_at)))
    total = len(data_metrics)
    for learner_days in days.values():
        total += len(learner_days)
        total += len({d + k for d in learner_days for k in range(SLIDING_DAYS)})
        total += len({month_bounds(d)[0] for d in learner_days})
    return total


def _ticks(settings, at_ms: int, round_no: int) -> None:  # type: ignore[no-untyped-def]
    """An answer into every partition of both input topics, time-stamped `at_ms`: the watermark moves past
    everything before at_ms - lateness on every partition at once."""
    producer = Producer(producer_config(settings))
    rng = random.Random(round_no)  # noqa: S311 - test data
    at = START + timedelta(milliseconds=at_ms - to_ms(START))
    for partition in range(settings.kafka.default_partitions):
        fb, m = answer_pair(rng, "lrn-clock", f"tick-{round_no}-{partition}", at, "tick tock", lexical=False)
        for event in (fb, m):
            producer.produce(topic_name(settings, event.TOPIC), key=event.key(), value=encode(event),
                             partition=partition, timestamp=at_ms)  # fmt: skip
    producer.flush(30)


def run(console: Console) -> None:
    with tempfile.TemporaryDirectory(prefix="sc-bench-metrics-") as tmp:
        base = isolated_settings(Path(tmp) / "state")
        stack = Stack(base)
        stack.up()
        try:
            _measure(console, base, Path(tmp))
        finally:
            stack.down()


def _measure(console: Console, base, tmp: Path) -> None:  # type: ignore[no-untyped-def]
    settings = job_settings(base, tmp, allowed_lateness_s=LATENESS_S, parallelism=PARALLELISM, idle_timeout_s=3.0)
    console.print(f"generating {ANSWERS:,} answers of {LEARNERS} learners over {DAYS} days ...")
    data = generate(LEARNERS, ANSWERS // LEARNERS, days=DAYS, shuffle_s=120, lexical=False, seed=31)
    answers = len(data.metrics)
    windows = expected_windows(data.metrics)
    words = Counter(len(f.transcript.split()) for f in data.feedback).most_common(1)[0][0]
    # Created with their partitions before anything is published (a producer would auto-create them otherwise).
    ensure_topics(settings, [Topic.FEEDBACK, Topic.ANSWER_METRICS, *OUTPUTS])
    started = time.monotonic()
    produce(settings, data.events, data.published_ms)
    # Closes every window of the backlog; its own windows stay open.
    end_ms = to_ms(START + timedelta(days=DAYS + 40))
    _ticks(settings, end_ms, 0)
    console.print(f"published {len(data.events):,} events in {time.monotonic() - started:.1f} s")

    reader = Reader(settings)
    job = Job(settings, tmp / "job.log")
    launched = time.time()
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("window results", total=windows)
            deadline = time.monotonic() + 1200
            while len(reader.collected.metrics) < windows and time.monotonic() < deadline:
                reader.poll(1.0)
                progress.update(task, completed=len(reader.collected.metrics))
                if not job.alive():
                    raise RuntimeError(f"metrics job exited:\n{job.tail()}")
        got = reader.collected.metrics
        if len(got) < windows:
            raise RuntimeError(f"only {len(got)} of {windows} window results arrived:\n{job.tail()}")
        last_n = sorted(t for t, e in got if e.window_kind == WindowKind.LAST_10)
        first_out, last_out = got[0][0], max(t for t, _ in got)
        lo, hi = last_n[len(last_n) // 10], last_n[len(last_n) * 9 // 10]
        steady = (len(last_n) * 8 // 10) / (hi - lo) if hi > lo else float("nan")
        whole = answers / (last_out - first_out) if last_out > first_out else float("nan")
        startup = first_out - launched
        console.print(
            f"steady {steady:,.0f}/s, first-to-last {whole:,.0f}/s, first result {startup:.1f} s after launch"
        )

        latencies = _latencies(console, settings, reader, end_ms)
    finally:
        reader.close()
        job.stop()

    load = os.getloadavg()[0]
    body = f"""
Command: `python -m benchmarks metrics_job` (`SC_BENCH_METRICS_ANSWERS`, `SC_BENCH_METRICS_PARALLELISM` change it).
A private local stack; the job as `python -m flink_jobs.metrics` (local MiniCluster, parallelism {PARALLELISM},
checkpoints every 2 s, at-least-once). Input: {answers:,} answers ({len(data.events):,} events: feedback with a
{words}-word transcript, and answer metrics) of {LEARNERS} learners over {DAYS} days, published before the job
starts; they close {windows:,} windows ({windows * 2:,} output records with the vocabularies). Allowed lateness
{LATENESS_S:.0f} s.

| measure | value |
|---|---|
| throughput, steady state (10th to 90th percentile of last-N results) | **{steady:,.0f} transcripts/s** |
| throughput, first to last result | {whole:,.0f} transcripts/s |
| first result after the process started | {startup:.1f} s |
| window-result latency, median of {len(latencies)} | **{median(latencies) * 1000:,.0f} ms** |
| window-result latency, p95 | {percentile(latencies, 0.95) * 1000:,.0f} ms |

{bar_chart([("target", 6500.0), ("this job, steady", steady), ("first to last", whole)], "transcripts/s")}

Latency is measured from publishing the records that move the watermark past an answer (one per input
partition) to its last-N result on the output topic: decode, keyed exchange, the periodic watermark (200 ms),
Python bundles (100 ms), the sink and the broker's fetch wait. The allowed lateness comes on top by design: a
window result waits until answers up to that late can no longer change it.
1-minute load average at the end: {load:.1f} (the machine is shared; see the lexical section for the cost of the
metrics alone).
"""
    write_section("metrics_job", "Metrics job (PyFlink, end to end through Kafka)", body)


def _latencies(console: Console, settings, reader: Reader, end_ms: int) -> list[float]:  # type: ignore[no-untyped-def]
    rng = random.Random(99)  # noqa: S311 - test data
    out: list[float] = []
    at_ms = end_ms
    for round_no in range(1, LATENCY_ROUNDS + 1):
        at_ms += 3_600_000
        answer_at = START + timedelta(milliseconds=at_ms - to_ms(START))
        fb, m = answer_pair(rng, "lrn-latency", f"live-{round_no}", answer_at, "a short live answer", lexical=False)
        produce(settings, [fb, m], [at_ms, at_ms])
        time.sleep(0.5)
        closes = at_ms + int(LATENESS_S * 1000) + 1
        sent = time.time()
        _ticks(settings, closes, round_no)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            reader.poll(0.05)
            hit = [
                t for t, e in reader.collected.metrics if e.learner_id == "lrn-latency" and e.window_end == answer_at
            ]
            if hit:
                out.append(hit[0] - sent)
                break
        at_ms = closes
    console.print(f"latency median {median(out) * 1000:.0f} ms over {len(out)} rounds")
    return out
