"""Load: simulated learners through the Telegram stand-in, the real bot and the whole pipeline (offline engines).

Each learner is a closed loop, as a person practising is: ask for a question, answer by voice (about 15 s of
espeak speech, as in the fault suite), wait for the feedback, think, again. The load rises in steps (more learners
each step); per step: answers per minute held and feedback latency (voice message in, feedback message out) p50
and p95. Over the run: the time per answer of each stage, the ceiling and which stage sets it.

Configured by environment: SC_LOAD_STEPS (learners per step, "2,4,8"), SC_LOAD_SECONDS (per step, 60),
SC_LOAD_THINK_S (3). `make soak` runs it.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from benchmarks.answers import job_stage_times
from benchmarks.report import bar_chart, percentile, write_section
from control.harness.pipeline import Pipeline, ask_and_answer, outcome_messages, running_pipeline, wait_feedback_count


@dataclass
class Step:
    learners: int
    seconds: float
    think_s: float
    latencies: list[float] = field(default_factory=list)  # of answers sent and answered within the step
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def per_minute(self) -> float:
        return len(self.latencies) / (self.seconds / 60)


def _learner(p: Pipeline, index: int, step: Step, began: float) -> None:
    user = p.learners[index]
    time.sleep(index * step.think_s / max(1, step.learners))  # staggered, as people are
    while time.monotonic() - began < step.seconds:
        done = outcome_messages(user)[0]
        try:
            ask_and_answer(user, p.speech, timeout=120)
            sent = time.monotonic()
            arrived = wait_feedback_count(user, done + 1, timeout=600)
        except AssertionError as exc:
            with step.lock:
                step.errors.append(str(exc)[:200])
            return
        if arrived - began <= step.seconds:  # the drain after the step's end is not held throughput
            with step.lock:
                step.latencies.append(arrived - sent)
        time.sleep(step.think_s)


def _run_step(console: Console, p: Pipeline, step: Step) -> None:
    began = time.monotonic()
    threads = [threading.Thread(target=_learner, args=(p, i, step, began), daemon=True) for i in range(step.learners)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(10)
        console.print(f"  {step.learners} learners, {time.monotonic() - began:4.0f} s: {len(step.latencies)} answered")


def _metric(port: int, name: str) -> float:
    """A Prometheus sample (summed over labels) from a service's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " ") or
               line.startswith(name + "{"))  # fmt: skip


def run(console: Console) -> None:
    counts = [int(n) for n in os.environ.get("SC_LOAD_STEPS", "2,4,8").split(",")]
    seconds = float(os.environ.get("SC_LOAD_SECONDS", "60"))
    think_s = float(os.environ.get("SC_LOAD_THINK_S", "3"))
    steps = [Step(n, seconds, think_s) for n in counts]
    with tempfile.TemporaryDirectory() as tmp:
        console.print("starting the pipeline (servers, answer job, ingestion, bot) ...")
        with running_pipeline(Path(tmp), json_logs=True, starter_credits=100_000) as p:
            p.onboard(max(counts))
            console.print(f"{max(counts)} learners onboarded; warming up the job (models load on the first answer)")
            ask_and_answer(p.learners[0], p.speech)
            wait_feedback_count(p.learners[0], 1, timeout=300)
            job_log = p.stack.answer_job.log_file
            skip = len(job_stage_times(job_log)["transcribe"])  # the warm-up answer
            bot_port, ingest_port = p.settings.bot.health_port, p.settings.warehouse.ingest_health_port
            publish0 = (_metric(bot_port, "bot_publish_seconds_sum"), _metric(bot_port, "bot_publish_seconds_count"))
            load_before = os.getloadavg()[0]
            for step in steps:  # each learner ends with their last feedback: the next step starts from no queue
                _run_step(console, p, step)
            publish = (_metric(bot_port, "bot_publish_seconds_sum") - publish0[0]) / max(
                1.0, _metric(bot_port, "bot_publish_seconds_count") - publish0[1]
            )
            ingest_batches = _metric(ingest_port, "speech_coach_ingest_batch_seconds_count")
            ingest_s = _metric(ingest_port, "speech_coach_ingest_batch_seconds_sum") / max(1.0, ingest_batches)
            stages = {k: v[skip:] for k, v in job_stage_times(job_log).items()}
            load_after = os.getloadavg()[0]
    _report(console, steps, publish, stages, ingest_s, ingest_batches, (load_before, load_after))


def _report(
    console: Console, steps: list[Step], publish_s: float, stages: dict[str, list[float]], ingest_s: float,
    ingest_batches: float, load: tuple[float, float],
) -> None:  # fmt: skip
    per_answer = {"bot: store + publish": publish_s} | {
        f"job: {name}": statistics.mean(values) for name, values in stages.items() if values
    }
    job_total = sum(v for k, v in per_answer.items() if k.startswith("job:"))
    bottleneck = max(per_answer, key=lambda k: per_answer[k])
    # The job handles one answer at a time (parallelism 1): its time per answer sets the ceiling.
    computed = 60 / job_total if job_total else float("nan")
    top = max(steps, key=lambda s: s.per_minute)
    rows = []
    for s in steps:
        p50, p95 = percentile(s.latencies, 0.5), percentile(s.latencies, 0.95)
        rows.append(f"| {s.learners} | {len(s.latencies)} | **{s.per_minute:.1f}** | {p50:.2f} s | {p95:.2f} s | "
                    f"{len(s.errors)} |")  # fmt: skip
        console.print(f"{s.learners} learners: {s.per_minute:.1f} answers/min held, p50 {p50:.2f} s, p95 {p95:.2f} s")
    console.print(f"ceiling {top.per_minute:.1f}/min measured, {computed:.1f}/min from stage times; {bottleneck}")
    seconds, think = steps[0].seconds, steps[0].think_s
    body = f"""
Simulated learners, each in a closed loop: ask for a TOEFL Task 1 question through the Telegram stand-in, answer
by voice (about 15 s of espeak speech), wait for the feedback, think {think:.0f} s, again; {seconds:.0f} s per step,
more learners each step. Every part runs as in production, as separate processes on the local stack: the real bot,
the answer job (PyFlink MiniCluster, offline engines: faster-whisper tiny.en, rubric estimates), the ingestion
service, Tansu, SeaweedFS, ClickHouse, PostgreSQL. `make soak` runs it (`benchmarks/load.py`; `SC_LOAD_STEPS`,
`SC_LOAD_SECONDS`, `SC_LOAD_THINK_S`). Latency: the voice message's arrival to the feedback message, as the learner
sees it. The machine is shared: 1-minute load average {load[0]:.1f} before the run, {load[1]:.1f} after it.

| learners | answers answered | answers per minute held | feedback latency p50 | p95 | errors |
|---|---|---|---|---|---|
{chr(10).join(rows)}

**Ceiling: {top.per_minute:.1f} answers per minute** (held with {top.learners} learners); {computed:.1f} from the job's
time per answer measured under this load (60 s / {job_total:.2f} s). **Bottleneck: {bottleneck}**,
{per_answer[bottleneck]:.2f} s of the {job_total + publish_s:.2f} s each answer spends in the bot and the job.
Ingestion, off the learner's path, took {ingest_s * 1000:.0f} ms per batch ({ingest_batches:.0f} batches).

Answers per minute held, by step:

{bar_chart([(f"{s.learners} learners", s.per_minute) for s in steps], "answers/min")}

Feedback latency p95, by step:

{bar_chart([(f"{s.learners} learners", percentile(s.latencies, 0.95)) for s in steps], "s")}

Time per answer by stage (mean over the run):

{bar_chart(list(per_answer.items()), "s")}

The job transcribes and scores one answer at a time, and transcription is most of that time, so once the learners
send more than the job answers, answers queue on `answers.raw`: throughput stays at the ceiling and latency grows
with the queue. Raising `SC_FLINK__PARALLELISM` on more cores, or the OpenAI engines, moves the ceiling; the bot,
Kafka and ingestion are far from their limits at this load. These answers are about 15 s long; a 45 s answer
takes about three times as long to transcribe (the answer pipeline section above), which lowers the ceiling
about as much.
"""
    write_section("load", "Load: simulated learners through the whole pipeline", body)
