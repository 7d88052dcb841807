"""The answer job, offline engines: latency from raw event to feedback event for 45 s answers, throughput,
WER of the offline transcription on the generated answers, and the job's peak memory.

Answers are synthesized with espeak-ng (three TOEFL Task 1 answers, each at several voices and rates), encoded as
Telegram voice messages (OGG/Opus 32 kbit/s), uploaded to S3 and announced on the raw-answer topic, as the bot does.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import psutil
from rich.console import Console

from benchmarks.report import bar_chart, median, percentile, write_section
from control.harness.answer_job import (
    ANSWERS_45S,
    Collector,
    Producer,
    audio_bucket,
    ffmpeg_of,
    job_settings,
    plain_text,
    raw_answer,
    start_job,
    upload,
)
from control.stack import Stack
from control.stack.isolated import isolated_settings
from speech_coach.audio.tts import synthesize, to_ogg_opus
from speech_coach.speech.wer import wer

VOICES = [("en-us", 150, 50), ("en", 145, 40), ("en-us", 160, 60), ("en-GB-x-rp", 150, 45)]
LATENCY_ANSWERS = 12  # one at a time
BURST_ANSWERS = 10  # all at once, for throughput
TARGET_P50_S = 6.0


class PeakRss:
    """Samples the RSS of a process and its children (JVM, Python workers) every 0.25 s."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                root = psutil.Process(self.pid)
                total = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
            except psutil.Error:
                continue
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._stop.set()
        self.thread.join(2)
        return self.peak


JOB_STAGES = ("fetch", "decode", "vad", "transcribe", "feedback")


def job_stage_times(log: Path) -> dict[str, list[float]]:
    """Per stage, the ms of every answer, in order, from the answer job's `answer processed` log lines."""
    stages: dict[str, list[float]] = {s: [] for s in JOB_STAGES}
    for line in log.read_text(errors="replace").splitlines():
        if '"answer processed"' not in line:
            continue
        try:
            record = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        for name in JOB_STAGES:
            if name in record:
                stages[name].append(float(record[name]))
    return stages


def _stage_medians(log: Path) -> dict[str, float]:
    return {k: statistics.median(v) for k, v in job_stage_times(log).items() if v}


def run(console: Console) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(isolated_settings(Path(tmp) / "state"))
        stack.up()
        try:
            _run(console, stack, Path(tmp))
        finally:
            stack.down()


def _run(console: Console, stack: Stack, tmp: Path) -> None:
    settings, variables = job_settings(stack.settings, tmp, SC_LOG__JSON_OUTPUT="true")
    ffmpeg = ffmpeg_of(settings)
    bucket = audio_bucket(settings)
    console.print("synthesizing answers ...")
    clips = []  # (reference text, ogg bytes, duration)
    for i in range(LATENCY_ANSWERS + BURST_ANSWERS):
        text = ANSWERS_45S[i % len(ANSWERS_45S)]
        voice, rate, pitch = VOICES[(i // len(ANSWERS_45S)) % len(VOICES)]
        speech = synthesize(text, voice=voice, rate_wpm=rate, pitch=pitch)
        clips.append((plain_text(text), to_ogg_opus(speech, ffmpeg), speech.duration_s))

    load_before = os.getloadavg()[0]
    started = time.monotonic()
    job = start_job(settings, variables, tmp / "job.log")
    memory = PeakRss(job.proc.pid)
    producer, collector = Producer(settings), Collector(settings)
    try:
        warm = raw_answer(upload(settings, bucket, clips[0][1]))
        producer.send(warm)
        collector.wait_feedback([warm.answer_id], timeout=300)
        startup_s = time.monotonic() - started
        console.print(f"job answered its first answer {startup_s:.1f} s after launch")

        latencies, errors, durations = [], [], []
        for ref, ogg, duration in clips[:LATENCY_ANSWERS]:
            answer = raw_answer(upload(settings, bucket, ogg), speaking_time_s=45)
            sent = producer.send(answer)
            result = collector.wait_feedback([answer.answer_id], timeout=120)[answer.answer_id]
            latencies.append(collector.data.arrived[answer.answer_id] - sent)
            errors.append(wer(ref, result.transcript))
            durations.append(duration)
            console.print(f"  {duration:.1f} s answer: {latencies[-1]:.2f} s, WER {errors[-1]:.1%}")

        burst = [(ref, raw_answer(upload(settings, bucket, ogg))) for ref, ogg, _ in clips[LATENCY_ANSWERS:]]
        burst_start = time.monotonic()
        for _, answer in burst:
            producer.send(answer)
        results = collector.wait_feedback([a.answer_id for _, a in burst], timeout=600)
        waits = [collector.data.arrived[a.answer_id] - burst_start for _, a in burst]
        burst_s = max(waits)
        errors += [wer(ref, results[a.answer_id].transcript) for ref, a in burst]
        per_minute = len(burst) / burst_s * 60
        peak = memory.stop()
        stages = _stage_medians(job.log)
    finally:
        memory.stop()
        collector.close()
        job.stop()

    p50, p95 = median(latencies), percentile(latencies, 0.95)
    load_after = os.getloadavg()[0]
    console.print(f"latency p50 {p50:.2f} s, p95 {p95:.2f} s; {per_minute:.1f} answers/min; "
                  f"WER median {median(errors):.1%}; peak RSS {peak / 2**20:.0f} MiB")  # fmt: skip
    verdict = "meets" if p50 <= TARGET_P50_S else "misses"
    body = f"""Command: `make bench` (or `python -m benchmarks answers`). The real PyFlink job on a local MiniCluster
(parallelism 1), offline engines (faster-whisper tiny.en int8, greedy; offline rubric feedback), against the local
stack. Answers are espeak-ng speech ({len(ANSWERS_45S)} TOEFL Task 1 texts x {len(VOICES)} voices/rates, median
{median(durations):.1f} s long), encoded as Telegram voice messages (OGG/Opus 32 kbit/s).

| measure | value |
|---|---|
| latency, raw event produced → feedback event consumed, 45 s answer, one at a time \
({len(latencies)} answers) | p50 **{p50:.2f} s**, p95 **{p95:.2f} s** ({verdict} the 6 s p50 target) |
| throughput, {len(burst)} answers sent at once | **{per_minute:.1f} answers/minute** \
({burst_s:.1f} s for {len(burst)}) |
| waiting in that queue of {len(burst)}: raw event → feedback event | median {median(waits):.1f} s, \
first {min(waits):.1f} s, last {max(waits):.1f} s (each result leaves as soon as it is ready) |
| offline WER on the generated answers ({len(errors)} answers) | median **{median(errors):.1%}**, \
mean {statistics.mean(errors):.1%}, max {max(errors):.1%} |
| peak memory of the job (RSS of the process tree: driver, JVM MiniCluster, Python worker) | \
**{peak / 2**20:.0f} MiB** |
| job start: launch → first feedback (JVM, job submission, model load, first answer) | {startup_s:.1f} s |

Median time per stage inside the worker (from the job's `answer processed` log lines):

{bar_chart([(k, v * 1000) for k, v in stages.items()], "ms")}

Latencies (s), in order: {", ".join(f"{v:.2f}" for v in latencies)}. The rest of the latency is Kafka, the Flink
source and sink, and the Python worker's bundle hand-off. Throughput is bound by transcription, which already
uses both cores (`SC_TRANSCRIPTION__CPU_THREADS=0`): more parallelism would not help on this machine. The machine
is shared: 1-minute load average {load_before:.1f} before the run, {load_after:.1f} after it (2 cores).
"""
    write_section("answers", "Answer pipeline (PyFlink, offline engines)", body)
