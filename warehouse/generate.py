"""Synthetic, realistic warehouse data at a chosen scale: learners, questions, answers, feedback, metrics.

Learners differ in ability and activity (a few practise a lot, most a little), improve with practice, and
drift away over time; scores, speaking rate, pauses and lexical diversity follow ability, task and practice,
with noise. Deterministic for a given seed. Rows go straight into the raw tables in columnar batches, as
ingestion would have written them, so dbt and the exports can be exercised and benchmarked at scale.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from clickhouse_driver import Client

from speech_coach.privacy import pseudonym
from speech_coach.settings import Settings

# (track, task_type, number of questions, speaking time s, scale max)
TASKS = [
    ("toefl", "toefl_independent", 60, 45, 4.0),
    ("toefl", "toefl_integrated_campus", 12, 60, 4.0),
    ("toefl", "toefl_integrated_academic", 12, 60, 4.0),
    ("toefl", "toefl_integrated_lecture", 12, 60, 4.0),
    ("toefl", "toefl_listen_repeat", 10, 15, 4.0),
    ("toefl", "toefl_interview", 10, 45, 4.0),
    ("job_interview", "job_interview", 40, 90, 5.0),
    ("workplace", "workplace", 40, 60, 5.0),
]
SENTENCES = [
    "I prefer studying in the morning because my mind is fresh",
    "In my previous job I led a small team of analysts",
    "The professor explains that the theory has two weaknesses",
    "I would suggest that we move the meeting to Thursday",
    "One example is when our project was delayed by a supplier",
    "The reading says the university will close the library at night",
    "I think the most important quality of a teacher is patience",
    "We solved the problem by talking to every customer directly",
    "The student disagrees because the new schedule is inconvenient",
    "Could you share the report before the end of the day",
]
CHUNK = 200_000


@dataclass(frozen=True)
class GeneratedCounts:
    learners: int
    questions: int
    answers: int


def _questions(now: datetime) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {k: [] for k in (
        "question_id", "bank_version", "track", "task_type", "title", "prompt", "preparation_time_s",
        "speaking_time_s", "difficulty", "retired_at", "updated_at",
    )}  # fmt: skip
    for track, task, n, speak, _ in TASKS:
        for i in range(1, n + 1):
            cols["question_id"].append(f"synthetic-{task}-{i:03d}")
            cols["bank_version"].append("synthetic")
            cols["track"].append(track)
            cols["task_type"].append(task)
            cols["title"].append(f"{task.replace('_', ' ')} #{i}")
            cols["prompt"].append(f"Synthetic question {i} for {task.replace('_', ' ')}.")
            cols["preparation_time_s"].append(15 if speak <= 45 else 30)
            cols["speaking_time_s"].append(speak)
            cols["difficulty"].append(["easy", "medium", "hard"][i % 3])
            cols["retired_at"].append(None)
            cols["updated_at"].append(now)
    return cols


def _insert(client: Client, table: str, cols: dict[str, Any]) -> None:
    names = list(cols)
    client.execute(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES",
        [cols[n] if isinstance(cols[n], list) else cols[n].tolist() for n in names],
        columnar=True,
    )


def generate(
    client: Client,
    settings: Settings,
    answers: int = 1_000_000,
    *,
    seed: int = 7,
    end: datetime | None = None,
    months: int = 12,
    progress: Callable[[int], None] = lambda _n: None,
) -> GeneratedCounts:
    rng = np.random.default_rng(seed)
    end = end or datetime(2026, 11, 1, tzinfo=UTC)
    start = end - timedelta(days=30 * months)
    span_s = (end - start).total_seconds()
    now = datetime.now(UTC)

    questions = _questions(now)
    _insert(client, "dim_questions", questions)
    q_ids = np.array(questions["question_id"])
    q_task_index = np.repeat(np.arange(len(TASKS)), [t[2] for t in TASKS])

    n_learners = max(1, answers // 40)
    ability = rng.normal(0, 1, n_learners)
    signup = rng.uniform(0, span_s * 0.9, n_learners)
    learner_ids = np.array([uuid.UUID(int=int(x)).hex for x in rng.integers(0, 2**63, n_learners)])
    telegram_ids = rng.integers(10**8, 7 * 10**9, n_learners)
    _insert(client, "raw_learners", {
        "learner_id": learner_ids,
        "learner_pseudonym": [pseudonym(settings, int(t)) for t in telegram_ids],
        "research_consent": (rng.random(n_learners) < 0.7).astype(np.uint8),
        "interface_language": rng.choice(["en", "ru"], n_learners, p=[0.4, 0.6]),
        "signed_up_at": [start + timedelta(seconds=float(s)) for s in signup],
        "updated_at": [now] * n_learners,
    })  # fmt: skip

    # Activity is heavy-tailed: a few learners answer hundreds of questions, most a handful.
    weights = rng.pareto(1.5, n_learners) + 0.05
    weights /= weights.sum()
    made = 0
    while made < answers:
        n = min(CHUNK, answers - made)
        who = rng.choice(n_learners, n, p=weights)
        q = rng.integers(0, len(q_ids), n)
        task = q_task_index[q]
        track = np.array([t[0] for t in TASKS])[task]
        task_type = np.array([t[1] for t in TASKS])[task]
        speak = np.array([t[3] for t in TASKS])[task]
        scale_max = np.array([t[4] for t in TASKS])[task]
        # Answers come after signup, denser early on (learners drift away).
        remaining = span_s - signup[who]
        at_s = signup[who] + remaining * rng.beta(1.0, 2.5, n)
        practice = at_s - signup[who]
        sent = np.datetime64(start.replace(tzinfo=None), "ms") + (at_s * 1000).astype("timedelta64[ms]")
        tta = rng.gamma(2.0, 8.0, n)
        received = sent + (tta * 1000).astype("timedelta64[ms]")
        skill = ability[who] + 0.35 * np.log1p(practice / 86400 / 7) + rng.normal(0, 0.5, n)
        norm = 1 / (1 + np.exp(-(skill - 0.2)))  # 0..1
        score = np.round(np.clip(norm * scale_max + rng.normal(0, 0.3, n), 0, scale_max), 2)
        duration = np.clip(speak * rng.uniform(0.6, 1.0, n), 3, None)
        wpm = np.clip(rng.normal(95 + 25 * norm, 12), 40, 200)
        tokens = np.maximum(1, (wpm * duration / 60).astype(int))
        speech = duration * np.clip(0.72 + 0.15 * norm + rng.normal(0, 0.04, n), 0.4, 0.98)
        pauses = rng.poisson(np.maximum(0.5, (duration - speech) / 0.7))
        mattr = np.clip(rng.normal(0.62 + 0.12 * norm, 0.04), 0.3, 0.95)
        types = np.minimum(tokens, np.maximum(1, (tokens * np.clip(mattr - 0.05, 0.2, 1)).astype(int)))
        rejected = rng.random(n) < 0.02
        answer_ids = [uuid.UUID(int=int(x)).hex for x in rng.integers(0, 2**63, n)]
        sha = [f"{int(x):064x}" for x in rng.integers(0, 2**63, n)]
        lids = learner_ids[who]
        received_list = received.astype(datetime).tolist()
        received_utc = [d.replace(tzinfo=UTC) for d in received_list]

        _insert(client, "raw_answers", {
            "answer_id": answer_ids, "learner_id": lids, "question_id": q_ids[q], "track": track,
            "task_type": task_type, "interface_language": rng.choice(["en", "ru"], n, p=[0.4, 0.6]),
            "speaking_time_s": speak.astype(np.uint16),
            "question_sent_at": [d.replace(tzinfo=UTC) for d in sent.astype(datetime).tolist()],
            "received_at": received_utc, "audio_bucket": ["speech-coach-audio"] * n,
            "audio_key": [f"audio/{h[:2]}/{h}.ogg" for h in sha], "audio_sha256": sha,
            "mime_type": ["audio/ogg"] * n, "size_bytes": (duration * 4000).astype(np.uint64),
            "duration_s": duration.astype(np.float32), "transcription_temperature": np.zeros(n, np.float32),
            "event_id": answer_ids, "occurred_at": received_utc,
            "_topic": ["synthetic"] * n, "_partition": np.zeros(n, np.uint32), "_offset": np.arange(made, made + n),
        })  # fmt: skip
        sentences = np.array(SENTENCES)[rng.integers(0, len(SENTENCES), (n, 2))]
        _insert(client, "raw_feedback", {
            "answer_id": answer_ids, "learner_id": lids, "question_id": q_ids[q], "track": track,
            "task_type": task_type, "status": np.where(rejected, "rejected", "ok"),
            "rejection_reason": np.where(rejected, "audio.silent", ""), "interface_language": ["en"] * n,
            "transcript": np.where(rejected, "", np.char.add(np.char.add(sentences[:, 0], ". "), sentences[:, 1])),
            "rubric_criteria": [["delivery", "language_use", "topic_development"]] * n,
            "rubric_scores": np.round(np.clip(score[:, None] + rng.normal(0, 0.3, (n, 3)), 0, scale_max[:, None]), 1),
            "rubric_max_scores": np.repeat(scale_max[:, None], 3, axis=1),
            "overall_score": [None if r else float(s) for r, s in zip(rejected, score, strict=True)],
            "feedback": ["Synthetic feedback."] * n, "strengths": [["clear structure"]] * n,
            "suggestions": [["use more specific examples"]] * n, "improved_answer": [""] * n,
            "words_per_minute": wpm.astype(np.float32), "pause_count": pauses.astype(np.uint32),
            "mean_pause_s": rng.uniform(0.3, 1.2, n).astype(np.float32), "lexical_diversity": mattr.astype(np.float32),
            "transcription_engine": ["synthetic"] * n, "transcription_model": ["synthetic"] * n,
            "feedback_engine": ["synthetic"] * n, "feedback_model": ["synthetic"] * n,
            "prompt_version": ["synthetic-v1"] * n,
            "scale": np.where(scale_max == 4.0, "toefl_0_4", "professional_0_5"),
            "fallback": np.zeros(n, np.uint8), "answered_at": received_utc, "event_id": answer_ids,
            "occurred_at": received_utc,
            "_topic": ["synthetic"] * n, "_partition": np.zeros(n, np.uint32), "_offset": np.arange(made, made + n),
        })  # fmt: skip
        _insert(client, "raw_answer_metrics", {
            "answer_id": answer_ids, "learner_id": lids, "question_id": q_ids[q], "task_type": task_type,
            "answered_at": received_utc, "total_duration_s": duration.astype(np.float32),
            "speech_duration_s": speech.astype(np.float32), "speaking_rate_wpm": wpm.astype(np.float32),
            "articulation_rate_wpm": (wpm * duration / speech).astype(np.float32),
            "silent_pause_count": pauses.astype(np.uint32),
            "mean_silent_pause_s": rng.uniform(0.3, 1.2, n).astype(np.float32),
            "mean_length_of_run_words": (tokens / (pauses + 1)).astype(np.float32),
            "filled_pause_count": rng.poisson(1.5, n).astype(np.uint32), "time_to_answer_s": tta.astype(np.float32),
            "tokens": tokens.astype(np.uint32), "types": types.astype(np.uint32),
            "ttr": (types / tokens).astype(np.float32), "root_ttr": (types / np.sqrt(tokens)).astype(np.float32),
            "mattr": mattr.astype(np.float32),
            "mtld": np.clip(rng.normal(40 + 40 * norm, 8), 5, 200).astype(np.float32),
            "hdd": np.clip(mattr + rng.normal(0.05, 0.02, n), 0, 1).astype(np.float32),
            "mean_zipf": np.clip(rng.normal(5.6 - 0.4 * norm, 0.15), 3, 7).astype(np.float32),
            "rare_word_share": np.clip(rng.normal(0.04 + 0.08 * norm, 0.02), 0, 1).astype(np.float32),
            "overall_score": [None if r else float(s) for r, s in zip(rejected, score, strict=True)],
            "lemmas": [{}] * n, "event_id": answer_ids, "occurred_at": received_utc,
            "_topic": ["synthetic"] * n, "_partition": np.zeros(n, np.uint32), "_offset": np.arange(made, made + n),
        })  # fmt: skip
        made += n
        progress(n)
    return GeneratedCounts(n_learners, len(q_ids), answers)
