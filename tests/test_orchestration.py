"""Dagster definitions load, and the whole asset graph materializes in-process on the local stack."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import frictionless
import pytest
from confluent_kafka import Producer

from control.stack import Stack
from control.stack.isolated import settings_env
from speech_coach.contracts import Topic, encode
from speech_coach.kafka import producer_config, topic_name
from speech_coach.privacy import pseudonym
from speech_coach.s3 import s3_client
from speech_coach.settings import Settings
from tests.test_contracts import samples
from warehouse.client import connect
from warehouse.generate import generate
from warehouse.migrate import migrate

pytestmark = pytest.mark.stack

TELEGRAM_USER = 5550001234567
TELEGRAM_CHAT = 987654321012


def test_definitions_load() -> None:
    from orchestration.definitions import defs

    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"warehouse_schema", "raw/raw_answers", "stg_answers", "research_answers", "research_export"} <= keys
    assert len(graph.asset_check_keys) > 50  # dbt tests became asset checks
    assert defs.resolve_sensor_def("ingestion_lag_sensor") and defs.resolve_schedule_def("hourly_ingestion")


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("target", [["-m", "orchestration"], []], ids=["module-orchestration", "pyproject-entry"])
def test_dagster_finds_the_definitions_by_its_own_conventions(target: list[str], tmp_path: Path) -> None:
    """From the repository root, `dagster definitions validate -m orchestration` and, with no arguments (reading
    `[tool.dagster]` in pyproject.toml, as `dagster dev` does), find the code location."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")} | {"DAGSTER_HOME": str(tmp_path)}
    dagster = str(Path(sys.executable).parent / "dagster")
    result = subprocess.run([dagster, "definitions", "validate", *target], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_dagster_dev_reads_the_pyproject_entry() -> None:
    """`dagster dev` with no arguments loads what `[tool.dagster]` names: the module `make run` serves."""
    import tomllib

    from dagster._core.workspace.load_target import get_target_from_toml_data

    from control.stack.dagster import CODE_LOCATION

    target = get_target_from_toml_data(tomllib.loads((ROOT / "pyproject.toml").read_text()))
    assert getattr(target, "module_name", None) == CODE_LOCATION == "orchestration.definitions"


@pytest.fixture
def dagster_env(stack: Stack, ch_database: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Point the SC_* environment (which Dagster's resources read) at this test's database and topics."""
    prefix = f"d{uuid.uuid4().hex[:8]}."
    for key, value in settings_env(stack.settings).items():
        monkeypatch.setenv(key, value)
    url = stack.settings.clickhouse_url.rsplit("/", 1)[0] + f"/{ch_database}"
    monkeypatch.setenv("SC_CLICKHOUSE__URL", url)
    monkeypatch.setenv("SC_KAFKA__TOPIC_PREFIX", prefix)
    monkeypatch.setenv("SC_WAREHOUSE__INGEST_GROUP_ID", f"wh-{prefix}")
    monkeypatch.setenv("SC_S3__EXPORTS_BUCKET", f"exports-{uuid.uuid4().hex[:8]}")
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_whole_graph_materializes_and_exports_are_valid_and_stable(
    dagster_env: Settings, pg_database: str, tmp_path: Path
) -> None:
    from orchestration.definitions import defs
    from orchestration.resources import SettingsResource, s3_resource

    settings = dagster_env
    client = connect(settings)
    migrate(client)
    generate(client, settings, 3000, seed=5, end=datetime(2026, 7, 1, tzinfo=UTC), months=3)
    # One answer through Kafka, from a learner with a Telegram id we can search the export for.
    answer, feedback, metrics = samples()[:3]
    learner = uuid.uuid4().hex
    when = datetime(2026, 6, 15, 12, tzinfo=UTC)
    telegram = answer.telegram.model_copy(update={"chat_id": TELEGRAM_CHAT, "update_id": TELEGRAM_CHAT + 1})
    question = "synthetic-toefl_independent-001"  # in the bank the generator loaded: referential checks pass
    events = [
        answer.model_copy(update={"learner_id": learner, "telegram": telegram, "received_at": when,
                                  "question_sent_at": when - timedelta(seconds=30), "question_id": question}),
        feedback.model_copy(update={"learner_id": learner, "answered_at": when, "question_id": question}),
        metrics.model_copy(update={"learner_id": learner, "answered_at": when, "question_id": question}),
    ]  # fmt: skip
    producer = Producer(producer_config(settings))
    for event in events:
        producer.produce(topic_name(settings, event.TOPIC), key=event.key(), value=encode(event))
    assert producer.flush(15) == 0
    client.execute(
        "INSERT INTO raw_learners (learner_id, learner_pseudonym, research_consent, interface_language, "
        "signed_up_at, updated_at) VALUES",
        [(learner, pseudonym(settings, TELEGRAM_USER), 1, "en", when - timedelta(days=3), when)],
    )

    resources = {"settings": SettingsResource(), "s3": s3_resource(settings)}
    unpartitioned = [a for a in defs.assets if getattr(a, "partitions_def", None) is None]  # type: ignore[union-attr]
    with dg.instance_for_test(overrides={"storage": {"postgres": {"postgres_url": pg_database}}}) as instance:
        quality_checks = [c for c in defs.asset_checks if "expectations" in c.node_def.name]
        assert len(quality_checks) == 3
        result = dg.materialize(
            [*unpartitioned, *quality_checks], resources=resources | {"dbt": defs.resources["dbt"]}, instance=instance
        )
        assert result.success
        checks = result.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks), [c.check_name for c in checks if not c.passed]
        # The great-expectations suites ran on real rows, besides the dbt tests.
        ge = {c.check_name: c for c in checks if c.check_name.endswith("_expectations")}
        assert set(ge) == {"raw_answers_expectations", "raw_feedback_expectations", "research_answers_expectations"}
        assert all(c.metadata["rows_checked"].value > 0 for c in ge.values())
        export_assets = [a for a in defs.assets if getattr(a, "partitions_def", None) is not None]  # type: ignore[union-attr]
        runs = [
            dg.materialize(export_assets, resources=resources, partition_key="2026-06-01", instance=instance)
            for _ in range(2)
        ]
        assert all(r.success for r in runs)
        # Dagster kept its run history in PostgreSQL.
        assert len(instance.get_runs()) == 3
        # The real bank is the active dimension; the generator's synthetic questions were retired, not deleted.
        from speech_coach.questions import load_bank

        bank = load_bank()
        active, retired = client.execute(
            "SELECT countIf(retired_at IS NULL), countIf(retired_at IS NOT NULL) FROM dim_questions FINAL"
        )[0]
        assert active == len([q for q in bank.items if not q.retired]) and retired >= 196
        again = dg.materialize(
            [a for a in unpartitioned if dg.AssetKey(["raw", "dim_questions"]) in a.keys],
            resources=resources, instance=instance,
        )  # fmt: skip
        assert again.success
        assert client.execute("SELECT count() FROM dim_questions FINAL")[0][0] == active + retired

    files = [r.asset_materializations_for_node("research_export")[0].metadata["files"].value for r in runs]
    stable = {name: meta for name, meta in files[0].items() if name != "answers.duckdb"}
    assert stable == {name: meta for name, meta in files[1].items() if name != "answers.duckdb"}

    s3 = s3_client(settings)
    prefix = "research/answers/2026-06/"
    out = tmp_path / "export"
    out.mkdir()
    for name in files[0]:
        (out / name).write_bytes(s3.get_object(Bucket=settings.s3.exports_bucket, Key=prefix + name)["Body"].read())
    report = frictionless.validate(str(out / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "note"])[:5]

    # No Telegram id or internal learner id anywhere in the exported files, and no identifying column
    # (the README may say in prose that usernames are left out).
    blob = b"".join((out / name).read_bytes() for name in files[0])
    for needle in (str(TELEGRAM_USER), str(TELEGRAM_CHAT), str(TELEGRAM_CHAT + 1), learner):
        assert needle.encode() not in blob, needle
    header = (out / "answers.csv").read_text().splitlines()[0].split(",")
    assert not [c for c in header if any(w in c for w in ("telegram", "username", "name", "chat"))]
    assert pseudonym(settings, TELEGRAM_USER).encode() in (out / "answers.csv").read_bytes()
    import duckdb

    con = duckdb.connect(str(out / "answers.duckdb"), read_only=True)
    csv_rows = (out / "answers.csv").read_text().count("\n") - 1
    assert con.execute("SELECT count(*) FROM answers").fetchone()[0] == csv_rows > 0
    assert hashlib.sha256((out / "answers.parquet").read_bytes()).hexdigest() == files[0]["answers.parquet"]["sha256"]


def test_make_run_starts_dagster_ui_and_daemon(stack: Stack, tmp_path: Path) -> None:
    """The platform parts of `make run`, pointed at the session's servers: the UI serves the code location."""
    import json
    import urllib.request

    from control.stack.isolated import free_port_block
    from speech_coach.settings import (
        AnswersSettings,
        DagsterSettings,
        KafkaSettings,
        MetricsSettings,
        WarehouseSettings,
    )
    from tests.conftest import unique, using_servers_of

    ports = free_port_block(2)
    # The Flink jobs, the other platform parts, have their own tests.
    settings = using_servers_of(
        stack,
        tmp_path / "state",
        dagster=DagsterSettings(port=ports),
        warehouse=WarehouseSettings(ingest_health_port=ports + 1),
        metrics=MetricsSettings(enabled=False),
        answers=AnswersSettings(enabled=False),
        # The ingestion service consumes these; other tests' topics are not its business.
        kafka=KafkaSettings(bootstrap_servers=stack.settings.kafka_bootstrap, topic_prefix=unique("t") + "."),
    )
    platform = Stack(settings, platform=True)
    result = platform.up()
    try:
        assert result.started == ["ingest", "dagster-code", "dagster-ui", "dagster-daemon"]
        query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{settings.dagster.port}/graphql", data=query,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback http
            keys = {"/".join(n["assetKey"]["path"]) for n in json.loads(response.read())["data"]["assetNodes"]}
        assert {"warehouse_schema", "raw/dim_questions", "research_answers", "research_export"} <= keys
        states = {st.name: st.state for st in platform.status()}
        names = ("dagster-code", "dagster-ui", "dagster-daemon", "ingest")
        assert [states[name] for name in names] == ["healthy"] * 4, states
        # Loopback only, the UI's code servers and the ingestion health server included.
        from tests.test_security import listening, not_loopback

        found = listening(st.pid for st in platform.status() if st.pid)
        assert len(found) >= 2 and not not_loopback(found), found
        # The definitions load once, in the code server: the UI and the daemon start no code server of their own.
        import psutil

        def loads_code(pid: int) -> bool:
            return any("api grpc" in " ".join(c.cmdline()) for c in psutil.Process(pid).children(recursive=True))

        pids = {st.name: st.pid for st in platform.status() if st.pid}
        assert [name for name in ("dagster-code", "dagster-ui", "dagster-daemon") if loads_code(pids[name])] == [
            "dagster-code"
        ]
    finally:
        assert platform.down() == ["dagster-daemon", "dagster-ui", "dagster-code", "ingest"]


def test_learners_and_ledger_reach_clickhouse_pseudonymized(
    dagster_env: Settings, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot's learners (with and without research consent) and ledger, copied without Telegram ids."""
    import psycopg

    from orchestration.definitions import defs
    from orchestration.resources import SettingsResource
    from speech_coach.db import upgrade

    monkeypatch.setenv("SC_POSTGRES__URL", pg_database)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    upgrade(settings)
    migrate(connect(settings))
    ids = [uuid.uuid4(), uuid.uuid4()]
    with psycopg.connect(pg_database) as conn:
        for n, (learner, consent) in enumerate(zip(ids, (True, False), strict=True)):
            tg = TELEGRAM_USER + n
            conn.execute(
                "INSERT INTO learners (id, telegram_user_id, chat_id, pseudonym, language, research_consent) "
                "VALUES (%s, %s, %s, %s, 'ru', %s)",
                (learner, tg, TELEGRAM_CHAT + n, pseudonym(settings, tg), consent),
            )
            conn.execute("INSERT INTO credit_ledger (learner_id, delta, reason, ref) VALUES (%s, 3, 'starter', %s)",
                         (learner, str(learner)))  # fmt: skip
            conn.execute("INSERT INTO credit_ledger (learner_id, delta, reason, ref) VALUES (%s, -1, 'answer', 'a')"
                         if n == 0 else "SELECT %s", (learner,))  # fmt: skip
    result = dg.materialize(
        [defs.get_assets_def(dg.AssetKey(["raw", "raw_learners"])),
         defs.get_assets_def(dg.AssetKey(["raw", "raw_credit_ledger_snapshots"]))],
        resources={"settings": SettingsResource()},
    )  # fmt: skip
    assert result.success
    client = connect(settings)
    learners = client.execute(
        "SELECT learner_id, learner_pseudonym, research_consent, interface_language FROM raw_learners FINAL "
        "ORDER BY research_consent DESC"
    )
    assert learners == [
        (str(ids[0]), pseudonym(settings, TELEGRAM_USER), 1, "ru"),
        (str(ids[1]), pseudonym(settings, TELEGRAM_USER + 1), 0, "ru"),
    ]
    ledger = client.execute(
        "SELECT learner_id, balance, charged, granted FROM raw_credit_ledger_snapshots FINAL ORDER BY balance"
    )
    assert ledger == [(str(ids[0]), 2, 1, 3), (str(ids[1]), 3, 0, 3)]
    dumped = repr(client.execute("SELECT * FROM raw_learners")) + repr(
        client.execute("SELECT * FROM raw_credit_ledger_snapshots")
    )
    assert str(TELEGRAM_USER) not in dumped and str(TELEGRAM_CHAT) not in dumped


HOSTILE_MONTHS = ["../../etc/passwd", "2026-06-01/../../../x", "2026-06-01'; DROP TABLE research_answers; --",
                  "2026-06-01\n", " 2026-06-01", "2026-06-15", "2026-13-01", "\uff12\uff10\uff12\uff16-06-01",
                  "9999-12-01", "1900-01-01", "", "2026-06", "2026-06-01T00:00:00"]  # fmt: skip


@pytest.mark.parametrize("key", HOSTILE_MONTHS)
def test_export_requests_for_anything_but_a_month_are_refused(key: str) -> None:
    from orchestration.domains.exports import export_month

    with pytest.raises(ValueError, match=r"month|no export"):
        export_month(key)


def test_a_hostile_export_request_writes_nothing(dagster_env: Settings) -> None:
    from orchestration.definitions import defs
    from orchestration.domains.exports import export_month
    from orchestration.resources import SettingsResource, s3_resource

    assert export_month("2026-06-01").isoformat() == "2026-06-01"
    export = [defs.get_assets_def(dg.AssetKey("research_export"))]
    resources = {"settings": SettingsResource(), "s3": s3_resource(dagster_env)}
    for key in ("../../../x", "2026-06-01'; --", "2999-01-01"):
        # Dagster refuses partitions outside the definition before any step runs (the asset would refuse too).
        with pytest.raises(Exception, match=r"(?i)partition"):
            dg.materialize(export, resources=resources, partition_key=key)
    client = s3_client(dagster_env)
    names = [b["Name"] for b in client.list_buckets()["Buckets"]]
    if dagster_env.s3.exports_bucket in names:
        assert client.list_objects_v2(Bucket=dagster_env.s3.exports_bucket).get("KeyCount", 0) == 0


def test_the_export_refuses_the_public_pseudonym_key_outside_a_local_environment(
    dagster_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration.definitions import defs
    from orchestration.resources import SettingsResource, s3_resource

    monkeypatch.setenv("SC_ENVIRONMENT", "production")
    export = [defs.get_assets_def(dg.AssetKey("research_export"))]
    resources = {"settings": SettingsResource(), "s3": s3_resource(dagster_env)}
    with pytest.raises(Exception, match="public default"):
        dg.materialize(export, resources=resources, partition_key="2026-06-01")
    client = s3_client(dagster_env)
    names = [b["Name"] for b in client.list_buckets()["Buckets"]]
    if dagster_env.s3.exports_bucket in names:
        assert client.list_objects_v2(Bucket=dagster_env.s3.exports_bucket).get("KeyCount", 0) == 0


def test_no_resource_of_the_definitions_holds_a_secret_value(tmp_path: Path) -> None:
    """Dagster shows every resource's configuration in its UI; secrets may appear there only as EnvVar names."""
    secrets = {
        "SC_S3__SECRET_KEY": "s3-secret-9d7e1c", "SC_BOT__TOKEN": "123:bot-token-5a1f",
        "SC_PRIVACY__PSEUDONYM_KEY": "pseudonym-key-" + "7" * 32, "SC_OPENAI__API_KEY": "sk-openai-3c9b",
        "SC_KAFKA__SASL_PASSWORD": "sasl-pass-8e2d",
    }  # fmt: skip
    # What the UI shows of a resource: its definition's configured values (an EnvVar appears as {"env": NAME}).
    script = (
        "import json\n"
        "from orchestration.definitions import defs\n"
        "shown = {n: r.get_resource_definition().config_schema.default_value for n, r in defs.resources.items()}\n"
        "print(json.dumps(shown, default=str))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")} | secrets | {"SC_ENVIRONMENT": "test"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])  # this checkout's code, from a directory without .env
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=180, check=True)  # fmt: skip
    config = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"settings", "s3"} <= set(config)
    for name, shown in config.items():
        leaked = [var for var, value in secrets.items() if value in json.dumps(shown)]
        assert not leaked, f"resource {name!r} shows the values of {leaked} in its configuration: {shown}"
    assert config["s3"]["aws_secret_access_key"] == {"env": "SC_S3__SECRET_KEY"}


def test_an_export_rechecks_consent_and_deletion_and_releases_no_contact_details(
    dagster_env: Settings, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The marts are built while three learners consent. Then one withdraws (in PostgreSQL only) and one asks for
    deletion (the request is on the topic, not yet ingested); the export built afterwards holds only the third,
    whose spoken e-mail address and phone number are not released. The check reads the released file itself."""
    import io

    import psycopg
    import pyarrow.parquet as pq

    from orchestration.definitions import defs
    from orchestration.resources import SettingsResource, s3_resource
    from speech_coach.contracts import LearnerDeletionRequest
    from speech_coach.db import upgrade
    from warehouse.dbt import run_dbt
    from warehouse.ingest import Ingestor

    monkeypatch.setenv("SC_POSTGRES__URL", pg_database)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    upgrade(settings)
    client = connect(settings)
    migrate(client)
    generate(client, settings, 60, seed=3, end=datetime(2026, 7, 1, tzinfo=UTC), months=1)  # dimensions
    answer, feedback, metrics = samples()[:3]
    when = datetime(2026, 6, 10, 9, tzinfo=UTC)
    question = "synthetic-toefl_independent-001"
    said = "I would call my manager at +44 20 7946 0958 or write to jane.doe@example.com before the meeting."
    people = {name: (uuid.uuid4(), 7_100_000 + n) for n, name in enumerate(("stays", "withdraws", "erased"))}
    events: list[Any] = []
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        for learner, telegram_id in people.values():
            conn.execute(
                "INSERT INTO learners (id, telegram_user_id, chat_id, pseudonym, research_consent, onboarded) "
                "VALUES (%s, %s, %s, %s, true, true)",
                (learner, telegram_id, telegram_id, pseudonym(settings, telegram_id)),
            )
            ids = {"learner_id": str(learner), "answer_id": uuid.uuid4().hex, "question_id": question}
            events += [
                answer.model_copy(update=ids | {"received_at": when, "question_sent_at": when - timedelta(seconds=30)}),
                feedback.model_copy(update=ids | {"answered_at": when, "transcript": said}),
                metrics.model_copy(update=ids | {"answered_at": when}),
            ]
    producer = Producer(producer_config(settings))
    for event in events:
        producer.produce(topic_name(settings, event.TOPIC), key=event.key(), value=encode(event))
    assert producer.flush(15) == 0
    with Ingestor(settings) as ingestor:
        ingestor.run(until_idle_s=5)
    resources = {"settings": SettingsResource(), "s3": s3_resource(settings)}
    assert dg.materialize([defs.get_assets_def(dg.AssetKey(["raw", "raw_learners"]))], resources=resources).success
    built = run_dbt(settings, ["build", "--select", "+research_answers", "--exclude", "test_type:data"])
    assert built.returncode == 0, built.stdout[-2000:]
    marts = {p for (p,) in client.execute("SELECT DISTINCT learner_pseudonym FROM research_answers FINAL")}
    mine = {name: pseudonym(settings, tid) for name, (_, tid) in people.items()}
    assert set(mine.values()) <= marts

    # After the build: a withdrawal and a deletion request the warehouse has not seen yet.
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE learners SET research_consent = false WHERE id = %s", (people["withdraws"][0],))
        producer.produce(topic_name(settings, Topic.DELETION_REQUESTS), key=str(people["erased"][0]).encode(),
                         value=encode(LearnerDeletionRequest(learner_id=str(people["erased"][0]))))  # fmt: skip
        assert producer.flush(15) == 0
        conn.execute("DELETE FROM learners WHERE id = %s", (people["erased"][0],))
    export = [defs.get_assets_def(dg.AssetKey("research_export"))]
    check = [c for c in defs.asset_checks if "export_has_no_personal_data" in c.node_def.name]
    result = dg.materialize([*export, *check], resources=resources, partition_key="2026-06-01")
    assert result.success
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed, evaluation.metadata
    s3 = s3_client(settings)
    body = s3.get_object(Bucket=settings.s3.exports_bucket, Key="research/answers/2026-06/answers.parquet")["Body"]
    rows = pq.read_table(io.BytesIO(body.read())).to_pylist()
    released = {r["learner_pseudonym"] for r in rows}
    assert mine["stays"] in released and not released & {mine["withdraws"], mine["erased"]}
    (spoken,) = [r["transcript"] for r in rows if r["learner_pseudonym"] == mine["stays"]]
    assert "jane.doe" not in spoken and "7946" not in spoken and "[email]" in spoken and "[phone number]" in spoken

    # The check reads what is in the bucket: a release that did hold a Telegram id and an e-mail fails it.
    import pyarrow as pa

    leaked = pa.Table.from_pylist([{"learner_pseudonym": "Lx", "transcript": f"{people['stays'][1]} a@b.example"}])
    sink = io.BytesIO()
    pq.write_table(leaked, sink)
    s3.put_object(
        Bucket=settings.s3.exports_bucket, Key="research/answers/2026-05/answers.parquet", Body=sink.getvalue()
    )
    rechecked = dg.materialize([*export, *check], resources=resources, partition_key="2026-06-01",
                               raise_on_error=False).get_asset_check_evaluations()  # fmt: skip
    assert not rechecked[0].passed
    assert rechecked[0].metadata["operational_ids"].value == 1 and rechecked[0].metadata["emails"].value == 1


def test_the_learners_copy_never_brings_back_a_learner_who_asked_for_deletion(
    dagster_env: Settings, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot publishes the deletion request first and erases its rows after; a copy in between must not put back
    into raw_learners what ingestion erases."""
    import psycopg

    from orchestration.definitions import defs
    from orchestration.resources import SettingsResource
    from speech_coach.contracts import LearnerDeletionRequest
    from speech_coach.db import upgrade

    monkeypatch.setenv("SC_POSTGRES__URL", pg_database)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    upgrade(settings)
    client = connect(settings)
    migrate(client)
    leaving, staying = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        for n, learner in enumerate((leaving, staying)):
            conn.execute("INSERT INTO learners (id, telegram_user_id, chat_id, pseudonym, research_consent) VALUES "
                         "(%s, %s, %s, %s, true)", (learner, 8_800 + n, 8_800 + n, f"L{n}"))  # fmt: skip
    producer = Producer(producer_config(settings))
    request = LearnerDeletionRequest(learner_id=str(leaving))
    producer.produce(topic_name(settings, Topic.DELETION_REQUESTS), key=request.key(), value=encode(request))
    assert producer.flush(15) == 0
    asset = defs.get_assets_def(dg.AssetKey(["raw", "raw_learners"]))
    assert dg.materialize([asset], resources={"settings": SettingsResource()}).success
    copied = {learner for (learner,) in client.execute("SELECT learner_id FROM raw_learners FINAL")}
    assert copied == {str(staying)}
