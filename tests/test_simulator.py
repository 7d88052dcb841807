"""The practice simulator end to end on the local stack: real speech, real jobs, warehouse, dbt and an export."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from control.stack import Stack
from control.stack.isolated import free_port_block
from speech_coach.contracts import ResultStatus
from speech_coach.settings import (
    AnswersSettings,
    ClickHouseSettings,
    DagsterSettings,
    KafkaSettings,
    MetricsSettings,
    PostgresSettings,
    S3Settings,
    WarehouseSettings,
)
from tests.conftest import using_servers_of

pytestmark = pytest.mark.stack


def test_simulated_learners_flow_through_the_whole_platform(
    stack: Stack,
    tmp_path: Path,
    ch_database: str,
    pg_database: str,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from control.simulator import cli
    from control.simulator.run import simulate
    from warehouse.client import connect

    s = stack.settings
    settings = using_servers_of(
        stack,
        tmp_path / "state",
        postgres=PostgresSettings(url=pg_database),
        clickhouse=ClickHouseSettings(url=s.clickhouse_url.rsplit("/", 1)[0] + f"/{ch_database}"),
        kafka=KafkaSettings(bootstrap_servers=s.kafka_bootstrap, topic_prefix=f"sim{uuid.uuid4().hex[:6]}."),
        s3=S3Settings(endpoint_url=s.s3_endpoint, exports_bucket=f"exports-{uuid.uuid4().hex[:8]}"),
        warehouse=WarehouseSettings(ingest_health_port=free_port_block(1), ingest_batch_timeout_s=0.5),
        dagster=DagsterSettings(enabled=False),  # the simulator materializes in-process, on the UI's instance
        answers=AnswersSettings(enabled=True, health_port=free_port_block(1)),
        metrics=MetricsSettings(enabled=True, allowed_lateness_s=5, idle_timeout_s=5, health_port=free_port_block(1)),
    )
    platform = Stack(settings, platform=True)
    started = platform.up()
    try:
        assert {"ingest", "answer-job", "metrics-job"} <= set(started.started)
        stages: dict[str, int] = {}
        capfd.readouterr()
        sim = simulate(
            settings, learners=2, answers_per_learner=2, seed=3, out_dir=tmp_path / "out",
            step=lambda stage, done, _total: stages.__setitem__(stage, done),
        )  # fmt: skip
        printed = capfd.readouterr()
    finally:
        platform.down()

    # Dagster's event log and dbt's log lines stay out of the terminal: they are in the instance and the log file.
    for noise in ("DEBUG", "STEP_START", "Running with dbt", "PASS="):
        assert noise not in printed.out + printed.err, f"{noise!r} printed:\n{printed.out[-2000:]}{printed.err[-2000:]}"
    assert sim.dagster_log is not None
    kept = sim.dagster_log.read_text()
    assert "STEP_SUCCESS" in kept and "dbt_models" in kept and "Running with dbt" in kept
    # The runs went to the stack's Dagster instance (make run's UI and daemon), so the UI shows them and the
    # marts as materialized.
    import dagster as dg

    from orchestration.domains.dbt import dbt_models

    marts = [key for key, group in dbt_models.group_names_by_key.items() if group == "dbt_marts"]
    assert dg.AssetKey("research_answers") in marts
    with dg.DagsterInstance.from_config(str(platform.dagster_ui.home)) as instance:
        assert len(sim.dagster_runs) == 2 and {r.run_id for r in instance.get_runs()} >= set(sim.dagster_runs)
        never = [k.to_user_string() for k in [*marts, dg.AssetKey("research_export")]
                 if instance.get_latest_materialization_event(k) is None]  # fmt: skip
        assert never == [], f"never materialized on the UI's instance: {never}"

    # Feedback for every simulated answer, scored: the speech is real English.
    ids = {a.event.answer_id for a in sim.answers}
    assert len(ids) == 4 and set(sim.feedback) == ids
    assert all(r.status == ResultStatus.OK and r.transcript for r in sim.feedback.values())
    assert stages == {"published": 4, "feedback": 4, "warehouse": 1, "models and export": 1}
    # Warehouse rows for each, the dbt marts built, and a consent-filtered export with every answer.
    assert sim.warehouse_rows == {"raw_answers": 4, "raw_feedback": 4, "raw_answer_metrics": 4}
    assert sim.dbt_models > 5
    client = connect(settings)
    assert client.execute("SELECT count() FROM research_answers")[0][0] == 4
    assert client.execute("SELECT countIf(research_consent = 1) FROM raw_learners FINAL")[0][0] == 2
    names = {p.name for p in sim.files}
    assert {"learner-progress.png", "answers.parquet", "answers.csv", "datapackage.json"} <= names
    package = json.loads(next(p for p in sim.files if p.name == "datapackage.json").read_text())
    assert package["resources"][0]["name"] and sim.export_prefix.startswith(f"s3://{settings.s3.exports_bucket}/")
    csv = next(p for p in sim.files if p.name == "answers.csv").read_text()
    assert csv.count("\n") == 5 and str(-7_000_000_000)[:6] not in csv  # no Telegram-like ids
    assert (tmp_path / "out" / "learner-progress.png").read_bytes()[:4] == b"\x89PNG"

    # What the command prints: a learner's feedback, the score chart and the files written.
    with cli.console.capture() as captured:
        cli._show_feedback(sim)
        cli._show_scores(sim)
        cli._show_summary(sim, settings)
    text = captured.get()
    flat = "".join(line.strip(" │┃") for line in text.splitlines())  # folded cells: rejoin the wrapped lines
    assert "Feedback for learner L" in text and "Transcript" in text and "█" in text
    assert "learner-progress.png" in flat and sim.export_prefix in flat

    # On an 80-column terminal nothing is wider, and each answer's bar stays on one line with its score.
    narrow = Console(width=80, record=True, file=io.StringIO())
    monkeypatch.setattr(cli, "console", narrow)
    cli._show_feedback(sim)
    cli._show_scores(sim)
    cli._show_summary(sim, settings)
    lines = narrow.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80, [line for line in lines if len(line) > 80]
    bars = [line for line in lines if "█" in line]
    assert len(bars) == 4 and all(line.rstrip()[-1].isdigit() for line in bars), bars
