"""The practice simulator: simulated learners answer by voice through the platform's real Kafka path.

No bot token needed. Each learner is created in the operational database (with research consent, under a
negative Telegram id that no real account has), answers questions from the bank with offline-synthesized
OGG/Opus speech stored in S3 under its content-addressed key, and the raw-answer events go to Kafka exactly as
the bot publishes them. The answer job transcribes and scores them, the metrics job windows them, ingestion
loads the warehouse; then the Dagster assets copy learners, build the dbt models and write the month's export.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speech_coach.contracts import FeedbackResult, RawVoiceAnswer, Topic, decode_as, encode
from speech_coach.contracts.events import AudioObject, TelegramRef
from speech_coach.questions import Question, load_bank
from speech_coach.settings import Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance

# Negative ids: Telegram never assigns them, so simulated learners can never meet a real account.
SIMULATED_USER_BASE = -7_000_000_000

Step = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class SimulatedAnswer:
    learner: str  # internal learner id
    pseudonym: str
    question: Question
    script_text: str
    event: RawVoiceAnswer


@dataclass
class Simulation:
    answers: list[SimulatedAnswer] = field(default_factory=list)
    feedback: dict[str, FeedbackResult] = field(default_factory=dict)
    warehouse_rows: dict[str, int] = field(default_factory=dict)
    windowed_results: int = 0
    dbt_models: int = 0
    export_prefix: str = ""
    files: list[Path] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    dagster_runs: list[str] = field(default_factory=list)  # on the stack's Dagster instance: the UI lists them
    dagster_log: Path | None = None


@contextmanager
def _settings_in_environment(settings: Settings) -> Iterator[None]:
    """The Dagster resources read SC_* variables; point them at these settings for the duration only."""
    from control.stack.isolated import settings_env

    saved = {k: v for k, v in os.environ.items() if k.startswith("SC_")}
    for key in saved:
        del os.environ[key]
    os.environ.update(settings_env(settings))
    try:
        yield
    finally:
        for key in [k for k in os.environ if k.startswith("SC_")]:
            del os.environ[key]
        os.environ.update(saved)


def _prepare(settings: Settings) -> None:
    from speech_coach.db import upgrade
    from speech_coach.db.questions import sync_questions
    from speech_coach.kafka import ensure_topics
    from speech_coach.s3 import ensure_bucket, s3_client
    from warehouse.client import connect
    from warehouse.migrate import migrate

    ensure_topics(settings)
    upgrade(settings)
    sync_questions(settings, load_bank())  # idempotent; the simulator's questions must exist for the bot tables
    ensure_bucket(s3_client(settings), settings.s3.audio_bucket, wait_s=10)
    migrate(connect(settings))


def _create_learners(settings: Settings, count: int, seed: int) -> list[tuple[str, str]]:
    import psycopg

    from speech_coach.privacy import pseudonym

    learners = []
    with psycopg.connect(settings.postgres_url) as conn:
        for n in range(count):
            user = SIMULATED_USER_BASE - seed * 1000 - n
            alias = pseudonym(settings, user)
            row = conn.execute(
                "INSERT INTO learners (id, telegram_user_id, chat_id, pseudonym, language, onboarded, "
                "research_consent, research_consent_changed_at) VALUES (%s, %s, %s, %s, 'en', true, true, now()) "
                "ON CONFLICT (telegram_user_id) DO UPDATE SET research_consent = true RETURNING id",
                (uuid.uuid4(), user, user, alias),
            ).fetchone()
            assert row is not None
            learners.append((str(row[0]), alias))
    return learners


def _questions_for(
    bank_questions: tuple[Question, ...], learner_index: int, count: int, rng: random.Random
) -> list[Question]:
    # Each learner practises one track, as learners do; tracks rotate across learners.
    tracks = sorted({q.track for q in bank_questions})
    track = tracks[learner_index % len(tracks)]
    pool = [q for q in bank_questions if q.track == track]
    rng.shuffle(pool)
    return pool[:count]


def _publish_answers(settings: Settings, learners: list[tuple[str, str]], per_learner: int, seed: int,
                     step: Step) -> list[SimulatedAnswer]:  # fmt: skip
    from confluent_kafka import Producer

    from control.simulator.answers import PERSONAS, compose
    from speech_coach.audio.tts import synthesize, to_ogg_opus
    from speech_coach.kafka import producer_config, topic_name
    from speech_coach.s3 import audio_key, s3_client
    from speech_coach.tools import find_ffmpeg

    rng = random.Random(seed)  # noqa: S311 - reproducible simulation, not security
    ffmpeg = find_ffmpeg(settings).executable
    s3 = s3_client(settings)
    producer = Producer(producer_config(settings))
    active = load_bank().active()
    out: list[SimulatedAnswer] = []
    total = len(learners) * per_learner
    failures: list[str] = []
    for index, (learner, alias) in enumerate(learners):
        persona = PERSONAS[index % len(PERSONAS)]
        for question in _questions_for(active, index, per_learner, rng):
            script = compose(question, persona, rng)
            speech = synthesize(script.ssml, rate_wpm=script.rate_wpm, ssml=True)
            audio = to_ogg_opus(speech, ffmpeg)
            sha = hashlib.sha256(audio).hexdigest()
            key = audio_key(sha, "audio/ogg")
            s3.put_object(Bucket=settings.s3.audio_bucket, Key=key, Body=audio, ContentType="audio/ogg",
                          Metadata={"sha256": sha})  # fmt: skip
            received = datetime.now(UTC)
            think = question.preparation_time_s + rng.uniform(2, 8)
            message_id = rng.randrange(1, 2**31)
            event = RawVoiceAnswer(
                answer_id=uuid.uuid4().hex,
                learner_id=learner,
                question_id=question.id,
                track=question.track,
                task_type=question.task_type,
                interface_language="en",
                speaking_time_s=question.speaking_time_s,
                question_sent_at=received - timedelta(seconds=think + speech.duration_s),
                received_at=received,
                audio=AudioObject(
                    bucket=settings.s3.audio_bucket,
                    key=key,
                    sha256=sha,
                    mime_type="audio/ogg",
                    size_bytes=len(audio),
                    duration_s=round(speech.duration_s, 2),
                ),
                telegram=TelegramRef(
                    update_id=message_id,
                    chat_id=SIMULATED_USER_BASE - index,
                    message_id=message_id,
                    file_unique_id=f"sim-{sha[:16]}",
                ),
            )

            def delivered(err: object, _msg: object, answer_id: str = event.answer_id) -> None:
                if err is not None:
                    failures.append(f"{answer_id}: {err}")

            producer.produce(topic_name(settings, Topic.RAW_ANSWERS), key=event.key(), value=encode(event),
                             on_delivery=delivered)  # fmt: skip
            producer.poll(0)
            out.append(SimulatedAnswer(learner, alias, question, script.text, event))
            step("published", len(out), total)
    if producer.flush(30) or failures:
        raise RuntimeError(f"publishing the simulated answers failed: {failures or 'flush timed out'}")
    return out


def _await_feedback(settings: Settings, wanted: set[str], timeout_s: float, step: Step) -> dict[str, FeedbackResult]:
    from confluent_kafka import Consumer

    from speech_coach.kafka import consumer_config, topic_name

    consumer = Consumer(consumer_config(settings, f"speech-coach-simulator-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([topic_name(settings, Topic.FEEDBACK)])
    got: dict[str, FeedbackResult] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < len(wanted) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None or msg.error() is not None:
                continue
            result = decode_as(FeedbackResult, msg.value() or b"")
            if result.answer_id in wanted and result.answer_id not in got:
                got[result.answer_id] = result
                step("feedback", len(got), len(wanted))
    finally:
        consumer.close()
    return got


def _await_warehouse(settings: Settings, answer_ids: list[str], timeout_s: float) -> dict[str, int]:
    """Rows for these answers in the raw tables, once ingestion has them (inline ingestion if no service runs)."""
    from control.stack.services import ingest_part
    from warehouse.client import connect
    from warehouse.ingest import Ingestor

    client = connect(settings)
    tables = ("raw_answers", "raw_feedback", "raw_answer_metrics")

    def counts() -> dict[str, int]:
        return {
            t: client.execute(f"SELECT count() FROM {t} FINAL WHERE answer_id IN %(ids)s", {"ids": tuple(answer_ids)})[
                0
            ][0]
            for t in tables
        }

    deadline = time.monotonic() + timeout_s
    service = ingest_part(settings).running() is not None
    while True:
        now = counts()
        if all(n >= len(answer_ids) for n in now.values()) or time.monotonic() > deadline:
            return now
        if service:
            time.sleep(1.0)
        else:
            with Ingestor(settings, client) as ingestor:
                ingestor.run(until_idle_s=3, max_seconds=60)


class SimulationError(RuntimeError):
    """A step of the simulation failed; the message says which, why, and where the full log is."""


def _materialize(instance: DagsterInstance, assets: list[Any], resources: dict[str, Any], what: str,
                 log_file: Path, **kwargs: Any) -> str:  # fmt: skip
    """One in-process run on the stack's Dagster instance; its log goes to `log_file`, not the terminal. Returns
    the run id; a failed run raises with the failed steps' messages."""
    import dagster as dg

    # Dagster's console logger prints every event at DEBUG; the events are kept in the instance (the UI shows
    # them) and copied to the log file, so the terminal shows the simulator's own progress only.
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    with log_file.open("a") as log:
        log.write(f"--- {what}: what the steps printed (dbt's log lines) ---\n")
        log.flush()
        # dagster-dbt echoes every dbt log line to sys.stdout (a run worker's compute log); in-process, that
        # would be the terminal.
        tags = {"speech-coach/source": "simulate"}
        with contextlib.redirect_stdout(log):
            result = dg.materialize(assets, instance=instance, resources=resources, run_config=quiet,
                                    raise_on_error=False, tags=tags, **kwargs)  # fmt: skip
        log.write(f"--- {what}: Dagster's events of run {result.run_id} ---\n")
        for entry in instance.all_logs(result.run_id):
            when = datetime.fromtimestamp(entry.timestamp, UTC)
            kind = entry.dagster_event_type.value if entry.dagster_event_type else "LOG"
            log.write(f"{when:%H:%M:%S} {logging.getLevelName(entry.level):<7} {kind} {entry.step_key or '-'} "
                      f"{entry.message}\n")  # fmt: skip
    if not result.success:
        failures = []
        for event in result.all_events:
            if event.is_step_failure and event.step_failure_data.error is not None:
                lines = [ln.strip() for ln in event.step_failure_data.error.message.splitlines() if ln.strip()]
                first = lines[0] if lines else ""
                failures.append(f"{event.step_key}: {first[:300] or 'failed'}")
        raise SimulationError(
            f"{what} failed ({'; '.join(failures) or 'see the log'}); run {result.run_id}, log {log_file}"
        )
    return result.run_id


def _build_and_export(settings: Settings, month: date, log_file: Path) -> tuple[int, str, list[str]]:
    """The Dagster assets, in-process but on the stack's Dagster instance (the same DAGSTER_HOME as `make run`'s
    UI and daemon, so the UI shows these runs and materializations): learners copy, dbt models, then this month's
    research export. Returns the number of dbt models, the export's location and the run ids."""
    import dagster as dg

    from control.stack.dagster import prepared_home
    from orchestration.definitions import defs
    from orchestration.domains.dbt import dbt_models
    from orchestration.domains.learners import raw_credit_ledger_snapshots, raw_learners
    from orchestration.domains.question_bank import question_bank_dim
    from orchestration.domains.warehouse import warehouse_schema
    from orchestration.resources import s3_resource

    # Ingestion is the running service's job; the rest of the graph is what a data scientist would materialize.
    selected = [warehouse_schema, question_bank_dim, raw_learners, raw_credit_ledger_snapshots, dbt_models]
    # The code location builds its S3 resource from the environment at import; this run's settings may differ.
    resources = defs.resources | {"s3": s3_resource(settings)}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text("")
    runs = []
    with _settings_in_environment(settings), dg.DagsterInstance.from_config(str(prepared_home(settings))) as instance:
        runs.append(_materialize(instance, selected, resources, "building the warehouse models", log_file))
        export = [defs.get_assets_def(dg.AssetKey("research_export"))]
        runs.append(_materialize(instance, export, resources, "the research export", log_file,
                                 partition_key=month.replace(day=1).isoformat()))  # fmt: skip
    return len(dbt_models.keys), f"s3://{settings.s3.exports_bucket}/research/answers/{month:%Y-%m}/", runs


def simulate(
    settings: Settings,
    *,
    learners: int = 3,
    answers_per_learner: int = 3,
    seed: int = 7,
    out_dir: Path,
    step: Step = lambda *_: None,
    feedback_timeout_s: float = 600.0,
    build_models: bool = True,
) -> Simulation:
    sim = Simulation()
    began = time.monotonic()
    _prepare(settings)
    people = _create_learners(settings, learners, seed)
    sim.answers = _publish_answers(settings, people, answers_per_learner, seed, step)
    sim.seconds["publish"] = time.monotonic() - began
    wanted = {a.event.answer_id for a in sim.answers}
    sim.feedback = _await_feedback(settings, wanted, feedback_timeout_s, step)
    sim.seconds["feedback"] = time.monotonic() - began
    if len(sim.feedback) < len(wanted):
        return sim  # the caller reports what is missing; nothing downstream would be complete
    step("warehouse", 0, 1)
    sim.warehouse_rows = _await_warehouse(settings, sorted(wanted), timeout_s=180)
    step("warehouse", 1, 1)
    sim.seconds["warehouse"] = time.monotonic() - began
    if build_models:
        step("models and export", 0, 1)
        sim.dagster_log = settings.state_dir / "logs" / "simulate-dagster.log"
        sim.dbt_models, sim.export_prefix, sim.dagster_runs = _build_and_export(
            settings, datetime.now(UTC).date(), sim.dagster_log
        )
        step("models and export", 1, 1)
        sim.seconds["models_and_export"] = time.monotonic() - began
    out_dir.mkdir(parents=True, exist_ok=True)
    sim.files.append(_chart(sim, out_dir))
    if sim.export_prefix:
        sim.files.extend(_download_export(settings, sim.export_prefix, out_dir / "export"))
    return sim


def _chart(sim: Simulation, out_dir: Path) -> Path:
    from speech_coach.charts import stats_png
    from speech_coach.text import tokenize

    learner = sim.answers[0].learner
    rows = []
    for answer in sim.answers:
        result = sim.feedback.get(answer.event.answer_id)
        if answer.learner != learner or result is None or result.metrics is None:
            continue
        counts: dict[str, int] = {}
        for word in tokenize(result.transcript).words:
            counts[word] = counts.get(word, 0) + 1
        rows.append({
            "overall_score": result.overall_score, "lexical_diversity": result.metrics.lexical_diversity,
            "words_per_minute": result.metrics.words_per_minute, "received_at": answer.event.received_at,
            "word_counts": counts,
        })  # fmt: skip
    labels = {
        "score": "Score", "answer": "Answer", "ld_last10": "Lexical diversity (last 10)",
        "ld_day": "Lexical diversity per day", "ld_month": "Lexical diversity per month",
        "wpm": "Speaking rate (words/min)", "words": "Most-used words",
        "title": "Progress of a simulated learner, {date}",
    }  # fmt: skip
    path = out_dir / "learner-progress.png"
    path.write_bytes(stats_png(rows, labels))
    return path


def _download_export(settings: Settings, prefix: str, target: Path) -> list[Path]:
    from speech_coach.s3 import s3_client

    bucket, _, key_prefix = prefix.removeprefix("s3://").partition("/")
    client = s3_client(settings)
    target.mkdir(parents=True, exist_ok=True)
    files = []
    for obj in client.list_objects_v2(Bucket=bucket, Prefix=key_prefix).get("Contents", []):
        path = target / obj["Key"].rsplit("/", 1)[-1]
        path.write_bytes(client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        files.append(path)
    return files
