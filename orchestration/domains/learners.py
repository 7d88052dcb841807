"""Learners domain: the operational PostgreSQL learners and credit ledger, copied pseudonymized into ClickHouse.

Only what analysis needs crosses over: the internal learner id (which the events carry too), the HMAC pseudonym,
research consent, interface language and sign-up time; never Telegram ids or chat ids. A learner who withdraws
research consent is copied with consent 0, and the research mart drops them on its next build. Erased learners
are gone from PostgreSQL; their ClickHouse rows are erased by the deletion request that ingestion applies.
"""

from datetime import UTC, datetime

import dagster as dg

from orchestration.domains.warehouse import warehouse_schema
from orchestration.resources import SettingsResource

GROUP = "learners"

LEARNERS_SQL = """
    SELECT id::text, pseudonym, research_consent, language, created_at FROM learners ORDER BY id
"""
# Per learner and UTC day: the balance at the end of the day and the day's movements by kind.
LEDGER_SQL = """
    SELECT day, learner_id::text, balance, charged, refunded, granted, purchased
    FROM (
        SELECT (created_at AT TIME ZONE 'UTC')::date AS day, learner_id,
               (array_agg(balance_after ORDER BY id DESC))[1] AS balance,
               -SUM(delta) FILTER (WHERE reason = 'answer') AS charged,
               SUM(delta) FILTER (WHERE reason = 'refund') AS refunded,
               SUM(delta) FILTER (WHERE reason IN ('starter', 'grant')) AS granted,
               SUM(delta) FILTER (WHERE reason = 'purchase') AS purchased
        FROM credit_ledger GROUP BY 1, 2
    ) days ORDER BY day, learner_id
"""


def _fetch(settings: SettingsResource, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    import psycopg

    from speech_coach.db import upgrade

    s = settings.get()
    upgrade(s)  # the bot's tables exist even before the bot's first start
    with psycopg.connect(s.postgres_url) as conn:
        return conn.execute(sql).fetchall()


@dg.asset(
    key=["raw", "raw_learners"],
    group_name=GROUP,
    deps=[warehouse_schema],
    description="PostgreSQL learners -> ClickHouse raw_learners: id, pseudonym, research consent, language.",
)
def raw_learners(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    copied, consenting = copy_learners(settings)
    context.log.info(f"{copied} learners copied, {consenting} with research consent")
    return dg.MaterializeResult(metadata={"learners": copied, "research_consent": consenting})


def erased_learners(settings: SettingsResource) -> set[str]:
    """Learner ids with a deletion request, read from the compacted deletion topic itself: it holds every request
    (the latest per learner), including those ingestion has not applied yet."""
    from speech_coach.contracts import LearnerDeletionRequest, Topic, decode_as
    from speech_coach.kafka import read_to_end

    return {
        decode_as(LearnerDeletionRequest, v).learner_id for v in read_to_end(settings.get(), Topic.DELETION_REQUESTS)
    }


def copy_learners(settings: SettingsResource) -> tuple[int, int]:
    """Copy the operational learners into raw_learners, except any who asked for deletion: between the bot's
    deletion request and its erasing the row, a copy would bring back what ingestion just erased."""
    from warehouse.client import insert

    now = datetime.now(UTC)
    erased = erased_learners(settings)
    rows = [
        {
            "learner_id": learner_id,
            "learner_pseudonym": pseudonym,
            "research_consent": int(consent),
            "interface_language": language,
            "signed_up_at": created_at,
            "updated_at": now,
        }
        for learner_id, pseudonym, consent, language, created_at in _fetch(settings, LEARNERS_SQL)
        if learner_id not in erased
    ]
    insert(settings.clickhouse(), "raw_learners", rows)
    return len(rows), sum(r["research_consent"] for r in rows)


@dg.asset(
    key=["raw", "raw_credit_ledger_snapshots"],
    group_name=GROUP,
    deps=[warehouse_schema],
    description="The append-only credit ledger, aggregated per learner and UTC day, into ClickHouse.",
)
def raw_credit_ledger_snapshots(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    from warehouse.client import insert

    now = datetime.now(UTC)
    rows = [
        {
            "snapshot_date": day,
            "learner_id": learner_id,
            "balance": balance,
            "charged": charged or 0,
            "refunded": refunded or 0,
            "granted": granted or 0,
            "purchased": purchased or 0,
            "updated_at": now,
        }
        for day, learner_id, balance, charged, refunded, granted, purchased in _fetch(settings, LEDGER_SQL)
    ]
    insert(settings.clickhouse(), "raw_credit_ledger_snapshots", rows)
    context.log.info(f"{len(rows)} learner-days of ledger copied")
    return dg.MaterializeResult(metadata={"learner_days": len(rows)})


learners_job = dg.define_asset_job(
    "learners_sync", selection=dg.AssetSelection.assets(raw_learners, raw_credit_ledger_snapshots)
)
hourly_learners = dg.ScheduleDefinition(
    job=learners_job, cron_schedule="15 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING
)

defs = dg.Definitions(
    assets=[raw_learners, raw_credit_ledger_snapshots], jobs=[learners_job], schedules=[hourly_learners]
)
