"""The metrics job, run for real (`python -m flink_jobs.metrics` on a local MiniCluster) against the test stack.

Its output, deduplicated by key, must equal the batch recomputation over the same answers; late answers must come
out as dead letters; a kill -9 mid-stream and a restart from the checkpoint must lose nothing; and the windowed
topics must land in ClickHouse, idempotently.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from benchmarks.answer_events import START, Generated, answer_pair, generate
from benchmarks.metrics_harness import Job, Reader, job_settings, produce
from control.stack import Stack
from flink_jobs.common import latest_checkpoint
from speech_coach.contracts.events import Event, encode
from speech_coach.contracts.topics import Topic
from speech_coach.settings import Settings
from speech_coach.windows import Results, answer_from, comparable, recompute, to_ms
from tests.observability_assets import http_status, scrape

pytestmark = pytest.mark.stack

LATENESS_S = 600.0
LEARNER = "lrn-7-00000"


def expected_for(data: Generated) -> Results:
    answers = [answer_from(f, m) for f, m in zip(data.feedback, data.metrics, strict=True)]
    return recompute([a for a in answers if a is not None])


def sentinel(days_after: int = 80) -> list[Event]:
    """One answer far in the future: its time pushes the watermark past every window of the test data (its own
    windows never close, so it adds no output)."""
    fb, m = answer_pair(random.Random(0), "lrn-sentinel", f"sentinel-{days_after}", START + timedelta(days=days_after),
                        "the end of the test data")  # fmt: skip
    return [fb, m]


def wait_for(reader: Reader, expected: Results, job: Job, timeout: float) -> None:
    """Read until the deduplicated output equals `expected` (or fail with the difference and the job's log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reader.poll(2.0)
        got = reader.collected.latest()
        if got.keys() >= expected.keys() and all(
            comparable(got[k][0]) == comparable(expected[k][0]) and comparable(got[k][1]) == comparable(expected[k][1])
            for k in expected
        ):
            return
        assert job.alive(), f"the job exited:\n{job.tail()}"
    got = reader.collected.latest()
    missing = sorted(expected.keys() - got.keys())
    differ = [k for k in expected.keys() & got.keys() if comparable(got[k][0]) != comparable(expected[k][0])]
    dead = [(d.reason, d.answer_id, d.detail) for d in reader.collected.dead_letters][:5]
    pytest.fail(f"{len(missing)} windows missing (e.g. {missing[:3]}), {len(differ)} differ (e.g. {differ[:3]});"
                f" dead letters: {dead}\n{job.tail()}")  # fmt: skip


def assert_equal_to_batch(reader: Reader, expected: Results) -> None:
    got = reader.collected.latest()
    assert got.keys() == expected.keys()
    for key, (metrics, vocabulary) in expected.items():
        assert comparable(got[key][0]) == comparable(metrics), key
        assert comparable(got[key][1]) == comparable(vocabulary), key


@pytest.fixture(scope="module")
def running(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Job]]:
    work = tmp_path_factory.mktemp("metrics-job")
    settings = job_settings(stack.settings, work, allowed_lateness_s=LATENESS_S)
    job = Job(settings, work / "job.log")
    try:
        yield settings, job
    finally:
        job.stop()


def test_windows_equal_batch_recomputation_and_late_answers_are_kept(
    running: tuple[Settings, Job], ch_database: str
) -> None:
    settings, job = running
    data = generate(learners=8, answers_per_learner=30, days=40, shuffle_s=300, lexical=False)
    expected = expected_for(data)
    assert {m.window_kind for m, _ in expected.values()} == {"last_10_answers", "day", "month", "sliding_7d"}
    produce(settings, data.events, data.published_ms)
    produce(settings, sentinel())
    reader = Reader(settings)
    try:
        wait_for(reader, expected, job, timeout=240)
        assert_equal_to_batch(reader, expected)
        assert reader.collected.dead_letters == []

        # Now the watermark is far past the data: answers from its middle are late. They come out as dead
        # letters with reason `late` and their original bytes; the windows do not change.
        rng = random.Random(11)
        late = [e for k in range(3) for e in answer_pair(rng, LEARNER, f"late-{k}", START + timedelta(days=10 + k),
                                                          "a late answer about the weather")]  # fmt: skip
        # Published long after they were answered (as late as the sentinel, so its own windows stay open).
        produce(settings, late, [to_ms(START + timedelta(days=80))] * len(late))
        deadline = time.monotonic() + 60
        while len(reader.collected.dead_letters) < len(late) and time.monotonic() < deadline:
            reader.poll(1.0)
        dead = reader.collected.dead_letters
        assert sorted((d.reason, d.answer_id) for d in dead) == sorted(("late", e.answer_id) for e in late)  # type: ignore[attr-defined]
        assert {base64.b64decode(d.payload_b64) for d in dead} == {encode(e) for e in late}
        assert {d.source_topic for d in dead} == {
            f"{settings.kafka.topic_prefix}{Topic.FEEDBACK}",
            f"{settings.kafka.topic_prefix}{Topic.ANSWER_METRICS}",
        }
        reader.poll(2.0)
        assert_equal_to_batch(reader, expected)
        assert_metrics_moved(job, answers=len(data.metrics), late=len(late))
        ingest_and_check(settings, ch_database, reader, expected)
    finally:
        reader.close()


def assert_metrics_moved(job: Job, answers: int, late: int) -> None:
    """The job process's /metrics (Flink's reporter) counted the answers windowed and the late records."""
    url = f"http://127.0.0.1:{job.health_port}"
    flink = "flink_taskmanager_job_task_operator_speech_coach_metrics_"
    deadline = time.monotonic() + 30
    while True:  # the MiniCluster's reporter pushes every 5 s
        metrics = scrape(url)
        if metrics.get(f"{flink}answers", 0) >= answers and metrics.get(f"{flink}late", 0) >= late:
            break
        assert time.monotonic() < deadline, {k: v for k, v in metrics.items() if k.startswith(flink)}
        time.sleep(1)
    assert metrics["flink_taskmanager_job_task_operator_numRecordsIn"] > 0
    assert http_status(f"{url}/healthz") == 200 and http_status(f"{url}/readyz") == 200


def ingest_and_check(settings: Settings, database: str, reader: Reader, expected: Results) -> None:
    """The windowed topics land in ClickHouse; ingesting them again (a replay) changes nothing under FINAL."""
    from warehouse.client import connect
    from warehouse.ingest import Ingestor
    from warehouse.migrate import migrate

    url = settings.clickhouse_url.rsplit("/", 1)[0] + f"/{database}"
    wh = settings.model_copy(update={"clickhouse": settings.clickhouse.model_copy(update={"url": url})})
    client = connect(wh)
    migrate(client)
    topics = (Topic.WINDOWED_METRICS, Topic.VOCABULARY, Topic.DEAD_LETTERS)
    words = sum(len(v.words) for _, v in expected.values())
    for run in range(2):  # the second run re-reads everything under a new group: a full replay
        with Ingestor(wh, client, topics=topics, group_id=f"wh-{run}-{settings.kafka.topic_prefix}") as ingestor:
            ingestor.run(until_idle_s=3)
        assert client.execute("SELECT count() FROM raw_windowed_metrics FINAL")[0][0] == len(expected)
        assert client.execute("SELECT count() FROM raw_word_counts FINAL")[0][0] == words
        assert client.execute("SELECT count() FROM raw_dead_letters FINAL WHERE reason = 'late'")[0][0] == 6
    rows = client.execute(
        "SELECT learner_id, window_kind, window_start, answer_count, pooled_mtld, pooled_root_ttr "
        "FROM raw_windowed_metrics FINAL"
    )
    by_key = {(r[0], r[1], r[2]): r for r in rows}
    for metrics, _ in expected.values():
        row = by_key[(metrics.learner_id, metrics.window_kind.value, metrics.window_start)]
        assert row[3] == metrics.answer_count
        assert row[4] == pytest.approx(metrics.pooled_mtld, rel=1e-6)  # Float32 in the table
        assert row[5] == pytest.approx(metrics.pooled_root_ttr, rel=1e-6)


def test_restart_from_checkpoint_after_kill_loses_nothing(stack: Stack, tmp_path: Path) -> None:
    settings = job_settings(stack.settings, tmp_path, allowed_lateness_s=LATENESS_S, parallelism=2)
    data = generate(learners=10, answers_per_learner=40, days=35, shuffle_s=300, seed=21, lexical=False)
    expected = expected_for(data)
    cut = len(data.events) * 3 // 5
    job = Job(settings, tmp_path / "job.log")
    reader = Reader(settings)
    try:
        produce(settings, data.events[:cut], data.published_ms[:cut])
        # Mid-stream: wait for output and for a completed checkpoint, then kill -9 the whole process group.
        checkpoints = tmp_path / "checkpoints" / "metrics"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and (not reader.collected.metrics or latest_checkpoint(checkpoints) is None):
            reader.poll(1.0)
            assert job.alive(), job.tail()
        assert reader.collected.metrics, job.tail()
        first = latest_checkpoint(checkpoints)
        assert first is not None
        produce(settings, data.events[cut : cut + 200], data.published_ms[cut : cut + 200])  # in flight as it dies
        job.kill()
        before = len(reader.collected.metrics)

        produce(settings, data.events[cut + 200 :], data.published_ms[cut + 200 :])
        produce(settings, sentinel())
        job = Job(settings, tmp_path / "job.log")
        wait_for(reader, expected, job, timeout=300)
        log = (tmp_path / "job.log").read_text(errors="replace").rsplit("metrics_job.starting", 1)[-1]
        assert "restored_from" in log and f"{checkpoints}/" in log  # it resumed from a checkpoint of the first run
        assert_equal_to_batch(reader, expected)
        assert len(reader.collected.metrics) > before
        assert reader.collected.dead_letters == []
    finally:
        reader.close()
        job.stop()
