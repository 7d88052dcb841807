"""Lexical metrics: per-answer throughput of `speech_coach.text.analyze` on 120-word transcripts, 1 and 2 processes."""

from __future__ import annotations

import multiprocessing
import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from rich.console import Console

from benchmarks.report import bar_chart, median, write_section
from speech_coach.text import analyze, warm_up

TRANSCRIPTS = 4000
WORDS = 120
RUNS = 7
SEED = 20240601
VOCABULARY = 20_000  # the most frequent English word forms; drawn by their real frequency (Zipf-like reuse)
FILLERS = ["um", "uh", "er", "hmm", "erm"]


def transcripts(count: int = TRANSCRIPTS, words: int = WORDS, seed: int = SEED) -> list[str]:
    """Deterministic speech-like transcripts: frequency-weighted English words in sentences of 5 to 18 words,
    with capitals, commas, full stops, an occasional number and about one filled pause per 40 words."""
    from wordfreq import top_n_list, word_frequency

    vocab = [w for w in top_n_list("en", VOCABULARY) if w.replace("'", "").isalpha()]
    weights = [word_frequency(w, "en") for w in vocab]
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    out = []
    for _ in range(count):
        drawn = rng.choices(vocab, weights, k=words)
        parts: list[str] = []
        left = 0
        for w in drawn:
            if left == 0:
                if parts:
                    parts[-1] += "."
                left = rng.randint(5, 18)
                w = w.capitalize()
            elif rng.random() < 0.08:
                parts[-1] += ","
            if rng.random() < 0.025:
                parts.append(rng.choice(FILLERS) + ",")
            if rng.random() < 0.01:
                parts.append(str(rng.randint(2, 500)))
            parts.append(w)
            left -= 1
        out.append(" ".join(parts) + ".")
    return out


def _analyze_all(texts: Sequence[str]) -> float:
    """Analyze every text; return the CPU seconds this process spent (excludes time other work held the core)."""
    started = time.process_time()
    for text in texts:
        analyze(text)
    return time.process_time() - started


def _one_process(texts: list[str]) -> float:
    started = time.perf_counter()
    _analyze_all(texts)
    return len(texts) / (time.perf_counter() - started)


def _worker_init() -> None:
    warm_up()


def _processes(pool: ProcessPoolExecutor, texts: list[str], workers: int) -> tuple[float, float]:
    """(wall-clock rate, rate from the busiest worker's CPU time). One chunk per worker and a float back: this
    measures the metrics, not pickling. The CPU-time rate is what the cores give when nothing else runs."""
    size = -(-len(texts) // workers)
    chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
    started = time.perf_counter()
    cpu = list(pool.map(_analyze_all, chunks))
    return len(texts) / (time.perf_counter() - started), len(texts) / max(cpu)


def run(console: Console) -> None:
    texts = transcripts()
    mean_tokens = sum(analyze(t).tokens for t in texts[:200]) / 200

    # Spawned, not forked: a fork would inherit this process's loaded data and filled caches.
    spawn = multiprocessing.get_context("spawn")
    # Cold: a fresh process loads simplemma's and wordfreq's data and fills the per-word caches.
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as cold_pool:
        cold_pool.submit(len, "start the worker").result()
        started = time.perf_counter()
        cold_pool.submit(warm_up).result()
        load_s = time.perf_counter() - started
        cold_rate = cold_pool.submit(_one_process, texts).result()

    warm_up()
    _analyze_all(texts)  # fill the caches: a long-running job sees its learners' words again and again
    single = [_one_process(texts) for _ in range(RUNS)]

    workers = 2
    with ProcessPoolExecutor(max_workers=workers, mp_context=spawn, initializer=_worker_init) as pool:
        _processes(pool, texts, workers)  # warm each worker's caches
        _processes(pool, texts, workers)
        load_before = os.getloadavg()[0]
        measured = [_processes(pool, texts, workers) for _ in range(RUNS)]
        load_after = os.getloadavg()[0]
    multi = [wall for wall, _ in measured]
    capacity = median([cpu for _, cpu in measured])

    one, two = median(single), median(multi)

    bars = [("1 process", one), (f"{workers} processes", two), (f"{workers} processes, CPU time", capacity)]
    bars.append(("cold first pass", cold_rate))

    def runs(values: list[float]) -> str:
        return ", ".join(f"{v:,.0f}" for v in values)

    body = f"""
Command: `python -m benchmarks lexical`. `speech_coach.text.analyze` (tokenize, lemmas, Zipf, frequency bands,
TTR, root TTR, MATTR, MTLD, HD-D) on {TRANSCRIPTS:,} deterministic transcripts of {WORDS} words (plus
about one filled pause per 40 words and a few numbers, which the tokenizer drops: {mean_tokens:.0f} lexical
tokens), drawn by frequency from wordfreq's {VOCABULARY:,} most frequent English words. Medians of {RUNS} runs;
caches warm (a long-running job's state).

| measure | transcripts/s | µs per transcript | runs |
|---|---|---|---|
| 1 process, warm caches | **{one:,.0f}** | {1e6 / one:,.0f} | {runs(single)} |
| {workers} processes, warm caches | **{two:,.0f}** | {1e6 / two:,.0f} (wall) | {runs(multi)} |
| {workers} processes, from the workers' CPU time | {capacity:,.0f} | {1e6 / capacity:,.0f} | median of {RUNS} |
| 1 process, first pass after start (cold caches) | {cold_rate:,.0f} | {1e6 / cold_rate:,.0f} | 1 |

{bar_chart(bars, "transcripts/s")}

Importing and loading the lemma dictionary and the frequency data (`warm_up`) takes **{load_s:.2f} s** once per
process.
Machine has {os.cpu_count()} cores; {workers} processes on {workers} cores scale {two / one:.2f}x by wall clock.
The machine is shared: the 1-minute load average was {load_before:.1f} before and {load_after:.1f} after the
{workers}-process runs, so their wall-clock rate varies run to run; the CPU-time row (transcripts / the busiest
worker's CPU seconds) is the rate {workers} uncontended cores give.
"""
    write_section("lexical", "Lexical metrics", body)
    console.print(body)
