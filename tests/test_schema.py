"""One source of truth per field: the warehouse's raw tables, the dbt staging docs and the research codebook
follow the event contracts (speech_coach/contracts/events.py), and each check names the field that drifted."""

from __future__ import annotations

import pytest

from control.stack import Stack
from speech_coach.contracts import Topic
from tests.test_contracts import samples
from warehouse.client import connect
from warehouse.migrate import migrate
from warehouse.rows import INGESTION_COLUMNS, TABLES, rows_for
from warehouse.schema import ddl_type, problems, read_schema


def contract_schema() -> dict[str, dict[str, str]]:
    """The raw tables as a new migration would create them from the contracts alone."""
    return {
        t.name: {c.column: ddl_type(c) for c in t.columns} | dict.fromkeys(INGESTION_COLUMNS, "UInt64")
        for t in TABLES.values()
    }


def test_every_topic_fills_a_raw_table_and_rows_have_exactly_its_columns() -> None:
    assert set(TABLES) == set(Topic)
    for event in samples():
        table = TABLES[event.TOPIC]
        for name, row in rows_for(event.TOPIC, event):
            assert name == table.name
            assert set(row) == {c.column for c in table.columns}, name


def test_the_contracts_own_ddl_passes_the_check() -> None:
    assert problems(contract_schema()) == []


@pytest.mark.parametrize(
    ("table", "column"), [(t.name, c.column) for t in TABLES.values() for c in t.columns], ids=lambda v: v
)
def test_a_missing_column_is_named_with_the_migration_it_needs(table: str, column: str) -> None:
    schema = contract_schema()
    wanted = schema[table].pop(column)
    found = problems(schema)
    assert len(found) == 1, found
    assert f"has no column {table}.{column}" in found[0]
    assert f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {wanted};" in found[0]


def test_mismatched_types_name_the_field() -> None:
    schema = contract_schema()
    schema["raw_windowed_metrics"]["pooled_mtld"] = "String"  # a number in a string column
    schema["raw_windowed_metrics"]["mean_score"] = "Float32"  # an optional field: NULL has nowhere to go
    schema["raw_answer_metrics"]["answered_at"] = "DateTime64(3)"  # no time zone
    schema["raw_feedback"]["rubric_scores"] = "Float32"  # one score per criterion: an array
    found = problems(schema)
    assert len(found) == 4, found
    for field, column in [
        ("WindowedMetrics.pooled_mtld (float)", "raw_windowed_metrics.pooled_mtld String"),
        ("WindowedMetrics.mean_score (float, optional)", "raw_windowed_metrics.mean_score Float32"),
        ("AnswerMetrics.answered_at", "raw_answer_metrics.answered_at DateTime64(3)"),
        ("FeedbackResult.rubric.score (float)", "raw_feedback.rubric_scores Float32"),
    ]:
        assert any(line.startswith(field) and f"does not fit {column};" in line for line in found), (field, found)


def test_compatible_variants_pass() -> None:
    schema = contract_schema()
    schema["raw_answers"]["track"] = "String"  # LowCardinality or not
    schema["raw_answers"]["speaking_time_s"] = "UInt16"  # any integer width
    schema["raw_answer_metrics"]["ttr"] = "Float64"
    schema["raw_answer_metrics"]["time_to_answer_s"] = "Nullable(Float64)"
    schema["raw_feedback"]["rejection_reason"] = "LowCardinality(String)"  # stored as '' when absent
    schema["raw_dead_letters"]["answer_id"] = "LowCardinality(Nullable(String))"
    assert problems(schema) == []


def test_a_column_without_a_contract_field_is_named() -> None:
    schema = contract_schema()
    schema["raw_windowed_metrics"]["pooled_hdd"] = "Float32"
    assert problems(schema) == [
        "raw_windowed_metrics.pooled_hdd holds no field of WindowedMetrics: the field was removed or renamed in the "
        "contract, or the column needs an entry in warehouse.rows.TABLES"
    ]


@pytest.mark.stack
def test_the_migrations_give_every_contract_field_a_column_of_a_compatible_type(stack: Stack, ch_database: str) -> None:
    client = connect(stack.settings, ch_database)
    migrate(client)
    found = problems(read_schema(client))
    assert not found, "the migrated raw tables do not match the contracts:\n" + "\n".join(found)


@pytest.mark.stack
def test_check_schema_command_names_what_a_migration_must_add(stack: Stack, ch_database: str) -> None:
    import os
    import subprocess
    import sys

    from control.stack.isolated import settings_env

    s = stack.settings
    url = s.clickhouse_url.rsplit("/", 1)[0] + f"/{ch_database}"
    settings = s.model_copy(update={"clickhouse": s.clickhouse.model_copy(update={"url": url})})
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")} | settings_env(settings)

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "control.cli", "warehouse", "check-schema"],
            env=env | {"COLUMNS": "400"}, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    before = check()  # an empty database: every raw table is missing
    assert before.returncode == 1 and "raw_windowed_metrics: no such table" in before.stdout, before
    migrate(connect(settings))
    after = check()
    assert after.returncode == 0 and "hold every field of the event contracts" in after.stdout, after


# --- dbt staging docs --------------------------------------------------------------------------------------


def staging_drift() -> list[str]:
    """Each staging column that comes from a contract field but is not documented as the contract says."""
    import yaml

    from control.reference import STAGING_DIR, staging_models, staging_yaml

    found = []
    for staging in staging_models():
        path = STAGING_DIR / f"{staging.model}.yml"
        (written,) = [m for m in yaml.safe_load(path.read_text())["models"] if m["name"] == staging.model]
        (wanted,) = [m for m in yaml.safe_load(staging_yaml(staging))["models"] if m["name"] == staging.model]
        have = {c["name"]: c for c in written.get("columns", [])}
        for column in wanted["columns"]:
            if "meta" not in column:
                continue
            where, source = f"{staging.model}.{column['name']}", column["meta"]["contract"]
            if column["name"] not in have:
                found.append(f"{where} comes from {source} but {path.name} does not document it")
            elif have[column["name"]].get("description") != column["description"]:
                found.append(f"{where}: {path.name} describes it as {have[column['name']].get('description')!r}, "
                             f"the contract ({source}) as {column['description']!r}")  # fmt: skip
            elif have[column["name"]] != column:
                found.append(f"{where}: its meta or accepted values differ from {source}")
    return found


def test_staging_columns_from_contract_fields_are_documented_from_the_contract() -> None:
    from control.reference import STAGING_DIR, staging_models, staging_yaml

    found = staging_drift()
    assert not found, "\n".join([*found, "regenerate: python -m control.reference dbt"])
    for staging in staging_models():
        path = STAGING_DIR / f"{staging.model}.yml"
        assert path.read_text() == staging_yaml(staging), f"{path.name} is stale: python -m control.reference dbt"


def test_staging_drift_names_the_column(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import shutil

    import control.reference
    from speech_coach.contracts import WindowedMetrics

    # The contract's description changed, and the YAML was not regenerated.
    field = WindowedMetrics.model_fields["pooled_mtld"]
    monkeypatch.setattr(field, "description", "Something else.")
    assert staging_drift() == [
        "stg_windowed_metrics.pooled_mtld: stg_windowed_metrics.yml describes it as \"MTLD over the window's "
        "words.\", the contract (WindowedMetrics.pooled_mtld) as 'Something else.'"
    ]
    monkeypatch.undo()

    # A column's entry was removed from the YAML.
    staging = tmp_path / "staging"
    shutil.copytree(control.reference.STAGING_DIR, staging)
    doc = staging / "stg_windowed_metrics.yml"
    text = doc.read_text()
    entry = text[text.index("      - name: pooled_mattr") : text.index("      - name: pooled_mtld")]
    doc.write_text(text.replace(entry, ""))
    monkeypatch.setattr(control.reference, "STAGING_DIR", staging)
    assert staging_drift() == [
        "stg_windowed_metrics.pooled_mattr comes from WindowedMetrics.pooled_mattr but stg_windowed_metrics.yml "
        "does not document it"
    ]


@pytest.mark.stack
def test_staging_views_have_the_columns_their_docs_are_generated_for(stack: Stack, ch_database: str, tmp_path) -> None:
    from control.reference import staging_models
    from warehouse.dbt import run_dbt

    client = connect(stack.settings, ch_database)
    migrate(client)
    result = run_dbt(stack.settings, ["run", "--select", "staging"], database=ch_database, target_dir=tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    for staging in staging_models():
        built = [r[0] for r in client.execute(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = %(t)s ORDER BY position",
            {"t": staging.model},
        )]  # fmt: skip
        assert built, staging.model
        # The generator reads each model's columns from its SQL; the view dbt built must have exactly those.
        assert sorted(built) == sorted(staging.columns), (staging.model, built, staging.columns)


# --- the research codebook ---------------------------------------------------------------------------------


def codebook_drift(codebook: list) -> list[str]:
    """Each codebook column that is a contract field but does not say what the contract says."""
    from speech_coach.contracts import AnswerMetrics, FeedbackResult, RawVoiceAnswer, unit_of

    feeding = {RawVoiceAnswer, FeedbackResult, AnswerMetrics}  # the events research_answers is built from
    columns = [(t.event, c) for t in TABLES.values() if t.event in feeding for c in t.columns]
    stored = {c.column: (event, c) for event, c in columns}
    by_source = {f"{event.__name__}.{c.path}": c for event, c in columns}
    found = []
    for var in codebook:
        if not var.source:
            if var.name in stored:
                event, column = stored[var.name]
                found.append(f"codebook column {var.name} is written by hand, but it is {event.__name__}."
                             f"{column.path}: declare it with from_contract()")  # fmt: skip
            continue
        column = by_source[var.source]
        if not var.description.startswith(column.info.description or "") or var.unit != unit_of(column.info):
            found.append(f"codebook column {var.name}: description or unit differ from {var.source}")
    return found


def test_codebook_columns_that_are_contract_fields_come_from_the_contract() -> None:
    from warehouse.codebook_doc import GUIDE, codebook_table
    from warehouse.exports import CODEBOOK

    assert codebook_drift(CODEBOOK) == []
    assert codebook_table() in GUIDE.read_text(), "docs/researcher-guide.md is stale: python -m warehouse.codebook_doc"
    ttr = next(v for v in CODEBOOK if v.name == "ttr")
    assert (ttr.type, ttr.unit, ttr.source) == ("number", "ratio (0-1)", "AnswerMetrics.ttr")


def test_codebook_drift_names_the_column() -> None:
    from warehouse.exports import CODEBOOK, Variable

    by_hand = Variable("mtld", "number", "tokens", "Measure of textual lexical diversity.", "McCarthy & Jarvis.")
    stale = next(v for v in CODEBOOK if v.name == "ttr")._replace(unit="ratio")
    codebook = [by_hand if v.name == "mtld" else stale if v.name == "ttr" else v for v in CODEBOOK]
    assert codebook_drift(codebook) == [
        "codebook column ttr: description or unit differ from AnswerMetrics.ttr",
        "codebook column mtld is written by hand, but it is AnswerMetrics.mtld: declare it with from_contract()",
    ]
