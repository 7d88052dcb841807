"""A measured floor under the metrics job: what any PyFlink job through Kafka costs per record on this machine.

A private local stack, set up as the metrics_job benchmark does. RECORDS feedback events (120-word transcripts)
are published once; then three minimal jobs (benchmarks/floor_jobs.py), each a real `python -m` process with a
local MiniCluster built from the real jobs' helpers, read that backlog from the beginning (a consumer group and
checkpoints of their own) and write one record per input to an output topic of their own:

    A  java      source -> sink of the same bytes: the JVM + broker floor
    B  identity  source -> Python map returning its input -> sink: the floor of any job with Python per record
    C  analyze   source -> Python map decoding the event and computing `analyze` on its transcript -> sink

Throughput comes from the arrival times of the output records (10th to 90th percentile); CPU per record by
process from the first to the last output record (`metrics_harness.cpu_seconds`).
"""

from __future__ import annotations

import itertools
import os
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from rich.console import Console
from rich.progress import Progress

from benchmarks.answer_events import generate
from benchmarks.metrics_harness import BROKER, Job, cpu_seconds, job_settings, on_private_stack, produce, rss_mb
from benchmarks.report import bar_chart, median, write_section
from speech_coach.contracts.events import FeedbackResult, decode_as, encode
from speech_coach.contracts.topics import Topic
from speech_coach.kafka import client_config, consumer_config, ensure_topics
from speech_coach.settings import Settings
from speech_coach.text import analyze, warm_up

RECORDS = int(os.environ.get("SC_BENCH_FLOOR_RECORDS", "40000"))
RUNS = int(os.environ.get("SC_BENCH_FLOOR_RUNS", "3"))
PARALLELISM = 2
LEARNERS = 400
TARGET = 6500.0  # transcripts/s, issue #11
CORES = 2
BUDGET_MS = CORES * 1000 / TARGET  # CPU ms per answer the target leaves on this machine
VARIANTS = {
    "java": "A. Java only",
    "identity": "B. Python identity",
    "analyze": "C. decode + analyze",
}
JOB_KINDS = ("JVM", "Python workers", "driver")
STALL_S = 60.0  # no output for this long after the first: the run failed


@dataclass
class Result:
    steady: float  # records/s, 10th to 90th percentile of output arrivals
    startup: float  # s from launch to the first output record
    cpu_ms: dict[str, float]  # CPU ms per record by process kind, first to last output record
    rss_mb: float  # peak resident memory of the job's processes
    load: float  # 1-minute load average when the backlog was done

    @property
    def job_ms(self) -> float:
        return sum(self.cpu_ms[k] for k in JOB_KINDS)

    @property
    def all_ms(self) -> float:
        return self.job_ms + self.cpu_ms[BROKER]


class Arrivals:
    """Counts the records arriving on one topic (every partition, from the beginning) and when each arrived."""

    def __init__(self, settings: Settings, topic: str, partitions: int) -> None:
        self.consumer = Consumer(consumer_config(settings, f"floor-reader-{uuid.uuid4().hex[:8]}"))
        self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        self.times: list[float] = []
        self.offsets: dict[int, list[int]] = {p: [] for p in range(partitions)}

    def poll(self, seconds: float, *, until_first: bool = False) -> None:
        """Read for `seconds`; `until_first`: return with the first few records, so the CPU counters can be read
        when output starts rather than after a fast job's whole backlog."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until_first and self.times):
            wait = min(0.2, max(0.01, deadline - time.monotonic()))
            messages = self.consumer.consume(100 if until_first else 10000, timeout=wait)
            now = time.time()
            for m in messages:
                partition, offset = m.partition(), m.offset()
                if not m.error() and partition is not None and offset is not None:
                    self.times.append(now)
                    self.offsets[partition].append(offset)

    def describe(self) -> str:
        """Per partition: records read, offset range and gaps (what to look at when records are missing)."""
        parts = []
        for p, offs in self.offsets.items():
            ordered = sorted(offs)
            gaps = sum(1 for x, y in itertools.pairwise(ordered) if y > x + 1)
            span = f"{ordered[0]}..{ordered[-1]}" if ordered else "-"
            parts.append(f"partition {p}: {len(offs)} records, offsets {span}, {gaps} gaps")
        return "; ".join(parts)

    def close(self) -> None:
        self.consumer.close()


def _create_topic(settings: Settings, name: str) -> None:
    admin = AdminClient(client_config(settings))
    new = NewTopic(name, num_partitions=settings.kafka.default_partitions, replication_factor=1)
    for future in admin.create_topics([new], operation_timeout=15).values():
        future.result(15)


def run(console: Console) -> None:
    on_private_stack("sc-bench-floor-", lambda settings, tmp, brokers: _measure(console, settings, tmp, brokers))


def _one(console: Console, settings: Settings, variant: str, work: Path, brokers: list[int]) -> Result:
    """One job over the whole backlog: fresh consumer group, checkpoints and output topic."""
    work.mkdir(parents=True)
    settings = settings.model_copy(
        update={
            "flink": settings.flink.model_copy(update={"checkpoint_dir": (work / "checkpoints").as_uri()}),
            "metrics": settings.metrics.model_copy(update={"group_id": f"floor-{uuid.uuid4().hex[:8]}"}),
        }
    )
    output = f"{settings.kafka.topic_prefix}floor-{variant}-{uuid.uuid4().hex[:6]}"
    _create_topic(settings, output)
    arrivals = Arrivals(settings, output, settings.kafka.default_partitions)
    job = Job(settings, work / "job.log", module="benchmarks.floor_jobs", args=[variant, output])
    launched = time.time()
    first_cpu: dict[str, float] | None = None
    first_count, rss = 0, 0.0
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"{VARIANTS[variant]}: output records", total=RECORDS)
            deadline = time.monotonic() + 600
            progressed = time.monotonic()
            while len(arrivals.times) < RECORDS and time.monotonic() < deadline:
                before = len(arrivals.times)
                arrivals.poll(0.5, until_first=first_cpu is None)
                if len(arrivals.times) > before or not arrivals.times:
                    progressed = time.monotonic()
                elif time.monotonic() - progressed > STALL_S:
                    break
                if first_cpu is None and arrivals.times:
                    first_cpu, first_count = cpu_seconds(job.proc.pid, brokers), len(arrivals.times)
                rss = max(rss, rss_mb(job.proc.pid))
                progress.update(task, completed=len(arrivals.times))
                if not job.alive():
                    raise RuntimeError(f"{variant} job exited:\n{job.tail()}")
        last_cpu = cpu_seconds(job.proc.pid, brokers)
    finally:
        tail = job.tail(60)  # before stopping: the shutdown's own messages would hide why it stalled
        arrivals.close()
        job.stop()
    times = sorted(arrivals.times)
    if len(times) < RECORDS or first_cpu is None:
        raise RuntimeError(
            f"{variant}: only {len(times)} of {RECORDS} records arrived ({arrivals.describe()}):\n{tail}"
        )
    lo, hi = times[len(times) // 10], times[len(times) * 9 // 10]
    steady = (len(times) * 8 // 10) / (hi - lo) if hi > lo else float("nan")
    handled = len(times) - first_count
    if handled < RECORDS // 2:
        raise RuntimeError(
            f"{variant}: {first_count} of {RECORDS} records arrived before the first CPU sample, too few to measure "
            "a rate after it; raise SC_BENCH_FLOOR_RECORDS"
        )
    cpu_ms = {k: (last_cpu[k] - first_cpu[k]) * 1000 / handled for k in last_cpu}
    result = Result(steady, times[0] - launched, cpu_ms, rss, os.getloadavg()[0])
    console.print(
        f"{VARIANTS[variant]}: steady {steady:,.0f}/s, CPU/record job {result.job_ms:.3f} ms "
        f"(JVM {cpu_ms['JVM']:.3f}, Python {cpu_ms['Python workers']:.3f}, driver {cpu_ms['driver']:.3f}), "
        f"broker {cpu_ms[BROKER]:.3f} ms, first output {result.startup:.1f} s after launch, load {result.load:.1f}"
    )
    return result


def _measure(console: Console, base: Settings, tmp: Path, brokers: list[int]) -> None:
    console.print(f"generating {RECORDS:,} feedback events ...")
    data = generate(LEARNERS, -(-RECORDS // LEARNERS), days=30, shuffle_s=120, lexical=False, seed=31)
    feedback = data.feedback[:RECORDS]
    words = median([float(len(f.transcript.split())) for f in feedback[:2000]])
    sizes = (
        median([float(len(encode(e))) for e in feedback[:2000]]),
        median([float(len(encode(e))) for e in data.metrics[:2000]]),
    )
    settings = job_settings(base, tmp, parallelism=PARALLELISM)
    ensure_topics(settings, [Topic.FEEDBACK])
    started = time.monotonic()
    produce(settings, feedback)
    console.print(f"published {len(feedback):,} feedback events in {time.monotonic() - started:.1f} s")
    alone = _in_process([encode(f) for f in feedback[:4000]])
    console.print(f"in one process, no Flink: decode {alone['decode']:.3f} ms, analyze {alone['analyze']:.3f} ms")
    results: dict[str, list[Result]] = {v: [] for v in VARIANTS}
    for run_no in range(RUNS):
        # Variants interleaved, so load from other work on the machine falls on all of them alike.
        for variant in VARIANTS:
            console.print(f"run {run_no + 1}/{RUNS}, {VARIANTS[variant]}")
            results[variant].append(_one(console, settings, variant, tmp / f"run{run_no}-{variant}", brokers))
    _report(results, words, sizes, alone)


def _in_process(payloads: list[bytes]) -> dict[str, float]:
    """CPU ms per record of C's two steps in this process, without Flink or Kafka: caches warm, best of 3."""
    warm_up()
    events = [decode_as(FeedbackResult, p) for p in payloads]
    for e in events:
        analyze(e.transcript)
    out = {"decode": float("inf"), "analyze": float("inf")}
    for _ in range(3):
        started = time.process_time()
        for p in payloads:
            decode_as(FeedbackResult, p)
        decoded = time.process_time()
        for e in events:
            analyze(e.transcript)
        done = time.process_time()
        out["decode"] = min(out["decode"], (decoded - started) * 1000 / len(payloads))
        out["analyze"] = min(out["analyze"], (done - decoded) * 1000 / len(payloads))
    return out


def _med(runs: list[Result], kind: str) -> float:
    return median([r.cpu_ms[kind] for r in runs])


def _report(
    results: dict[str, list[Result]], words: float, sizes: tuple[float, float], alone: dict[str, float]
) -> None:
    kinds = [*JOB_KINDS, BROKER]
    med = {v: {k: _med(runs, k) for k in kinds} for v, runs in results.items()}
    job = {v: sum(med[v][k] for k in JOB_KINDS) for v in results}
    total = {v: job[v] + med[v][BROKER] for v in results}
    steady = {v: median([r.steady for r in runs]) for v, runs in results.items()}
    a, b, c = "java", "identity", "analyze"
    # Per answer the real job reads two records (feedback, answer metrics), writes at least two (the last-N
    # result and its vocabulary) and computes the metrics: C's record (in, out, metrics) plus B's (in, out).
    bound_job = job[c] + job[b]
    bound_all = total[c] + total[b]
    # Without assuming anything about the extra record's sink: only its Python hop (B over A), no broker.
    bound_strict = job[c] + max(0.0, job[b] - job[a])
    rows = []
    for v, runs in results.items():
        m = med[v]
        rows.append(
            f"| {VARIANTS[v]} | **{steady[v]:,.0f}** ({', '.join(f'{r.steady:,.0f}' for r in runs)}) "
            f"| {CORES * 1000 / total[v]:,.0f} | {m['JVM']:.3f} | {m['Python workers']:.3f} | {m['driver']:.3f} "
            f"| {m[BROKER]:.3f} | **{job[v]:.3f}** | {median([r.startup for r in runs]):.1f} "
            f"| {median([r.rss_mb for r in runs]):,.0f} | {', '.join(f'{r.load:.1f}' for r in runs)} |"
        )
    cpu_rows = [(f"{VARIANTS[v][:2]} {k}", med[v][k]) for v in results for k in ("JVM", "Python workers", BROKER)]
    rates = [
        ("target", TARGET),
        *[(f"{VARIANTS[v]}, wall", steady[v]) for v in results],
        *[(f"{VARIANTS[v]}, CPU time", CORES * 1000 / total[v]) for v in results],
    ]
    bounds = [
        ("budget (2 cores / 6,500)", BUDGET_MS),
        ("still lower (C + B-A, job)", bound_strict),
        ("bound (C + B, job)", bound_job),
        ("bound (C + B, with broker)", bound_all),
    ]
    header = (
        "| job | records/s, steady (runs) | records/s from CPU time | JVM ms | Python ms | driver ms | broker ms "
        "| job ms | first output (s) | RSS MB | load (1 min) |\n" + "|---" * 11 + "|"
    )
    body = f"""
Command: `python -m benchmarks metrics_floor` (`SC_BENCH_FLOOR_RECORDS`, `SC_BENCH_FLOOR_RUNS` change it).
Is 6,500 transcripts/s reachable for a PyFlink job that runs Python per record through Kafka on these
{CORES} cores? A private local stack as in the metrics_job benchmark; {RECORDS:,} feedback events (a
{words:.0f}-word transcript each, {sizes[0]:,.0f} bytes; the answer-metrics events the real job also reads are
{sizes[1]:,.0f} bytes) are published once, then three minimal jobs, each its own `python -m benchmarks.floor_jobs`
process (local MiniCluster, parallelism {PARALLELISM}, checkpoints every 2 s, at-least-once, Python workers in
process mode, the real jobs' `flink_jobs.common` environment, source and sink producer settings), read the whole
backlog with a consumer group of their own and write one record per input to an output topic of their own:

- **A. Java only**: Kafka source -> Kafka sink of the same bytes. The JVM and broker cost of moving a record.
- **B. Python identity**: source -> a Python map returning its input bytes -> sink. The least any job with a
  Python function per record pays.
- **C. decode + analyze**: source -> a Python map that decodes the `FeedbackResult` and computes
  `speech_coach.text.analyze` on its transcript, emitting one small record (answer id, six metrics as JSON)
  through the real jobs' row sink. No windows, no state.

Throughput: output records/s from their arrival times (10th to 90th percentile), median of {RUNS} runs (variants
interleaved). CPU per record: CPU time of each process kind from the first to the last output record, over the
records in between, median of runs; "job" is JVM + Python workers + driver, the broker (Tansu and its S3 store) is
counted apart. The CPU-time rate is {CORES} cores over all of it (job and broker): what the {CORES} cores give
when nothing else runs, which wall-clock rates on this shared machine do not show. CPU time per record is
steadier than wall-clock rates but still rises somewhat when other work shares the cores (the load column).

{header}
{chr(10).join(rows)}

{bar_chart(rates, "records/s")}

CPU per record by process (median of runs):

{bar_chart(cpu_rows, "ms CPU per record")}

**The bound.** Per answer the metrics job reads two records (the feedback and the answer metrics), each
through a Python operator, writes at least two (the answer's last-N result and its vocabulary; day, 7-day and
month windows come on top) and computes the lexical metrics of one transcript: at least one C record plus one
B record, with no windows, no state, no keyed exchange and smaller outputs than the real ones. Job processes
only (JVM, Python workers, driver): {job[c]:.3f} + {job[b]:.3f} = **{bound_job:.3f} ms** per answer; with the
broker on the same cores, {total[c]:.3f} + {total[b]:.3f} = {bound_all:.3f} ms. A still lower figure, counting
for the second record only the Python hop (B minus A: no source, sink or broker): {job[c]:.3f} +
{max(0.0, job[b] - job[a]):.3f} = {bound_strict:.3f} ms. The 6,500/s target leaves {CORES} cores / 6,500 =
**{BUDGET_MS:.3f} ms** per answer.

{bar_chart(bounds, "ms CPU per answer")}

**For the 6,500/s target: the lower bound is {bound_job / BUDGET_MS:.1f}x the budget (job processes only;
{bound_all / BUDGET_MS:.1f}x with the broker, {bound_strict / BUDGET_MS:.1f}x for the still lower figure).**
{_implication(job, total, alone, med, (bound_strict, bound_job, bound_all))}
"""
    write_section("metrics_floor", "Metrics job floor (minimal PyFlink jobs through Kafka)", body, after="metrics_job")


def _implication(
    job: dict[str, float],
    total: dict[str, float],
    alone: dict[str, float],
    med: dict[str, dict[str, float]],
    bounds: tuple[float, float, float],
) -> str:
    a, b, c = "java", "identity", "analyze"
    bound_strict, bound_job, bound_all = bounds
    hop = job[b] - job[a]
    lines = [
        f"Moving a record from Kafka through the JVM to Kafka costs {job[a]:.3f} ms of job CPU (A); a Python map "
        f"on the way adds {hop:.3f} ms (B minus A, {hop / BUDGET_MS:.0%} of the budget), most of it in the JVM "
        f"(B's JVM {med[b]['JVM']:.3f} ms against A's {med[a]['JVM']:.3f} ms; the Python worker itself "
        f"{med[b]['Python workers']:.3f} ms). Two records per answer through B take {2 * job[b]:.3f} ms of job "
        f"CPU, {2 * job[b] / BUDGET_MS:.0%} of the budget, and {2 * total[b]:.3f} ms with the broker "
        f"({2 * total[b] / BUDGET_MS:.0%}), before any metrics.",
        f"C's Python workers spend {med[c]['Python workers']:.3f} ms per record; in one process without Flink "
        f"the same decode takes {alone['decode']:.3f} ms and `analyze` {alone['analyze']:.3f} ms (warm caches), "
        f"so most of C over B is the per-answer metrics themselves.",
    ]
    if bound_job > BUDGET_MS:
        lines.append(
            f"So a PyFlink job that reads both input records, writes the answer's result and computes these "
            f"per-answer metrics in Python cannot pass about {CORES * 1000 / bound_job:,.0f} answers/s on "
            f"{CORES} cores ({CORES * 1000 / bound_all:,.0f}/s with the broker on the same cores, "
            f"{CORES * 1000 / bound_strict:,.0f}/s at the still lower figure), whatever its windows and state "
            f"cost. 6,500/s on {CORES} cores is out of reach for any such job; the floor is not the JVM/Python "
            f"crossing alone but the record movement and the metrics together. It needs more cores, or the "
            f"per-answer metrics and record handling outside a per-record Python function."
        )
    else:
        lines.append(
            f"So the per-record cost of PyFlink and the per-answer metrics together leave room: at "
            f"{bound_job:.3f} ms of job CPU ({bound_all:.3f} ms with the broker) {CORES} cores could pass about "
            f"{CORES * 1000 / bound_job:,.0f} answers/s before windows and state. The 6,500/s target is not ruled "
            f"out by this floor; the gap to the metrics job's rate is in its windows, state and outputs."
        )
    return "\n".join(textwrap.fill(line, 115) for line in lines)
