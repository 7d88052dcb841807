"""Question-bank domain: the versioned bank files, validated and loaded into the warehouse dimension."""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from orchestration.domains.warehouse import warehouse_schema
from orchestration.resources import SettingsResource

GROUP = "question_bank"


@dg.asset(
    key=["raw", "dim_questions"],
    group_name=GROUP,
    deps=[warehouse_schema],
    description="question_bank/*.yaml, validated against its schema, upserted into ClickHouse dim_questions. "
    "Questions removed from the files are retired (retired_at set), never deleted, so answer history joins.",
)
def question_bank_dim(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    from speech_coach.questions import load_bank, to_dim_rows
    from warehouse.client import insert

    bank = load_bank()  # QuestionBankError names the file, line and field of every problem
    rows = to_dim_rows(bank)
    client = settings.clickhouse()
    active = {qid for (qid,) in client.execute("SELECT question_id FROM dim_questions FINAL WHERE retired_at IS NULL")}
    in_bank = {r["question_id"] for r in rows}
    now = datetime.now(UTC)
    removed = sorted(active - in_bank)
    retired = []
    if removed:
        current = client.execute(
            "SELECT * FROM dim_questions FINAL WHERE question_id IN %(ids)s", {"ids": tuple(removed)},
            with_column_types=True,
        )  # fmt: skip
        names = [c[0] for c in current[1]]
        retired = [dict(zip(names, row, strict=True)) | {"retired_at": now, "updated_at": now} for row in current[0]]
    # Same release, same rows and updated_at: a re-run replaces rows with identical ones.
    insert(client, "dim_questions", rows)
    insert(client, "dim_questions", retired)
    context.log.info(f"bank {bank.version}: {len(rows)} questions, {len(retired)} retired now")
    return dg.MaterializeResult(
        metadata={
            "bank_version": bank.version,
            "questions": len(rows),
            "retired_now": dg.MetadataValue.json(removed),
            "by_task": dg.MetadataValue.json(
                {t: sum(1 for r in rows if r["task_type"] == t) for t in sorted({r["task_type"] for r in rows})}
            ),
        }
    )


class BankConfig(dg.Config):  # type: ignore[misc]
    directory: str = Field("", description="Question-bank directory; empty: question_bank/ in the repository.")


@dg.asset(
    key=["operational", "questions"],
    group_name=GROUP,
    description="question_bank/*.yaml upserted into PostgreSQL `questions`, which the bot reads (Alembic schema). "
    "Removed questions are retired, never deleted.",
)
def question_bank_postgres(
    context: dg.AssetExecutionContext, config: BankConfig, settings: SettingsResource
) -> dg.MaterializeResult:
    from speech_coach.db import upgrade
    from speech_coach.db.questions import sync_questions
    from speech_coach.questions import load_bank

    bank = load_bank(config.directory) if config.directory else load_bank()
    s = settings.get()
    upgrade(s)  # idempotent: the schema is at head before the bank is written
    result = sync_questions(s, bank)
    context.log.info(f"bank {bank.version}: {result.upserted} questions, {len(result.retired)} retired now")
    return dg.MaterializeResult(
        metadata={
            "bank_version": bank.version,
            "questions": result.upserted,
            "retired_now": dg.MetadataValue.json(result.retired),
        }
    )


defs = dg.Definitions(assets=[question_bank_dim, question_bank_postgres])
