"""dbt on the real local ClickHouse: a clean build, an incremental re-run, deletions, and DuckDB on the export."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from control.stack import Stack
from speech_coach.settings import Settings
from warehouse.client import connect
from warehouse.dbt import run_dbt
from warehouse.generate import generate
from warehouse.migrate import migrate

pytestmark = pytest.mark.stack


def build(settings: Settings, database: str, tmp_path, *extra: str) -> str:
    result = run_dbt(settings, ["build", *extra], database=database, target_dir=tmp_path / "target")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return result.stdout


def same_rows(client, left: str, right: str) -> bool:
    diff = client.execute(f"SELECT count() FROM (({left}) EXCEPT ({right}) UNION ALL (({right}) EXCEPT ({left})))")[0][
        0
    ]
    return diff == 0


DAILY = """
SELECT learner_id, answered_date AS day, count() AS answers, toUInt64(max(answer_number)) AS answers_to_date
FROM int_answers_enriched GROUP BY learner_id, answered_date
"""


def test_build_rebuild_incremental_and_deletion(stack: Stack, ch_database: str, tmp_path) -> None:
    settings = stack.settings
    client = connect(settings, ch_database)
    migrate(client)
    generate(client, settings, 4000, seed=1, end=datetime(2026, 6, 1, tzinfo=UTC), months=6)
    out = build(settings, ch_database, tmp_path)
    assert "Completed successfully" in out and "ERROR=0" in out
    assert "3 unit tests" in out  # the model unit tests ran, not just the data tests
    first = client.execute("SELECT count() FROM research_answers")[0][0]
    assert first > 0

    # More, later data: the incremental marts must end up as a full rebuild would.
    generate(client, settings, 3000, seed=2, end=datetime(2026, 9, 1, tzinfo=UTC), months=4)
    build(settings, ch_database, tmp_path)
    assert same_rows(client, "SELECT learner_id, day, answers, answers_to_date FROM learner_progress_daily", DAILY)
    consenting = client.execute(
        "SELECT count() FROM int_answers_enriched WHERE has_research_consent AND status IS NOT NULL"
    )[0][0]
    assert client.execute("SELECT count() FROM research_answers")[0][0] == consenting > first
    outsiders = "SELECT learner_pseudonym FROM stg_learners WHERE has_research_consent"
    assert (
        client.execute(f"SELECT count() FROM research_answers WHERE learner_pseudonym NOT IN ({outsiders})")[0][0] == 0
    )

    # A learner asks for deletion: gone from every mart after the next (incremental) run.
    victim, pseudo = client.execute(
        "SELECT learner_id, learner_pseudonym FROM stg_learners WHERE has_research_consent "
        "AND learner_id IN (SELECT learner_id FROM learner_progress_daily) LIMIT 1"
    )[0]
    client.execute(
        "INSERT INTO raw_deletion_requests (learner_id, requested_at, event_id, _topic, _partition, _offset) VALUES",
        [(victim, datetime.now(UTC), "del-1", "test", 0, 0)],
    )
    build(settings, ch_database, tmp_path)
    for table, column, value in [
        ("learner_progress_daily", "learner_id", victim),
        ("learner_progress_monthly", "learner_id", victim),
        ("int_answers_enriched", "learner_id", victim),
        ("research_answers", "learner_pseudonym", pseudo),
    ]:
        assert client.execute(f"SELECT count() FROM {table} WHERE {column} = %(v)s", {"v": value})[0][0] == 0, table


def test_researchers_query_the_parquet_export_with_duckdb(stack: Stack, ch_database: str, tmp_path) -> None:
    settings = stack.settings
    client = connect(settings, ch_database)
    migrate(client)
    generate(client, settings, 2000, seed=3)
    build(settings, ch_database, tmp_path, "--select", "+research_answers", "--indirect-selection", "cautious")
    parquet = tmp_path / "research_answers.parquet"
    rows, columns = client.execute("SELECT * FROM research_answers", with_column_types=True)
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [c[0] for c in columns]
    pq.write_table(pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}), parquet)
    # The query shown in docs/warehouse.md.
    result = duckdb.sql(
        f"""
        SELECT track, count(*) AS answers, round(avg(normalized_score), 3) AS mean_score
        FROM read_parquet('{parquet}')
        WHERE status = 'ok'
        GROUP BY track ORDER BY track
        """
    ).fetchall()
    expected = client.execute(
        "SELECT track, count(), round(avg(normalized_score), 3) FROM research_answers WHERE status = 'ok' "
        "GROUP BY track ORDER BY track"
    )
    assert [r[:2] for r in result] == [tuple(r[:2]) for r in expected]
    assert all(abs(a[2] - b[2]) < 1e-3 for a, b in zip(result, expected, strict=True))


def test_the_dagster_manifest_is_parsed_once_and_only_when_the_project_changed(tmp_path, monkeypatch) -> None:
    """`make install` and every process loading the definitions call `ensure_manifest`: concurrent callers wait
    for one `dbt parse`, and what dbt writes itself (a build's compiled SQL, logs) does not make it stale."""
    import os
    import subprocess
    import threading
    import time

    from warehouse import dbt

    project = tmp_path / "dbt"
    model = project / "models" / "m.sql"
    model.parent.mkdir(parents=True)
    model.write_text("select 1")
    monkeypatch.setattr(dbt, "PROJECT_DIR", project)
    monkeypatch.setattr(dbt, "MANIFEST_DIR", project / "target" / "dagster")
    parses: list[list[str]] = []

    def fake_dbt(_settings: Settings, args: list[str], *, target_dir, database=None):  # type: ignore[no-untyped-def]
        parses.append(args)
        time.sleep(0.5)  # long enough for the other callers to arrive while it runs
        (target_dir / "manifest.json").write_text("{}")
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(dbt, "run_dbt", fake_dbt)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    callers = [threading.Thread(target=dbt.ensure_manifest, args=(settings,)) for _ in range(3)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert parses == [["parse"]]

    later = time.time() + 10
    for generated in (project / "target" / "run" / "m.sql", project / "logs" / "dbt.yml"):
        generated.parent.mkdir(parents=True, exist_ok=True)
        generated.write_text("-- written by dbt")
        os.utime(generated, (later, later))
    dbt.ensure_manifest(settings)
    assert len(parses) == 1
    os.utime(model, (later, later))
    dbt.ensure_manifest(settings)
    assert len(parses) == 2
