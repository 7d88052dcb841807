"""Warehouse domain: the ClickHouse schema and the ingestion of every Kafka topic into the raw tables."""

import dagster as dg

from orchestration.resources import SettingsResource

GROUP = "warehouse"
# Raw tables filled by ingestion; the dbt sources point at these asset keys.
INGESTED_TABLES = [
    "raw_answers",
    "raw_feedback",
    "raw_answer_metrics",
    "raw_windowed_metrics",
    "raw_word_counts",
    "raw_deletion_requests",
    "raw_dead_letters",
]


@dg.asset(group_name=GROUP, description="ClickHouse schema: applies the versioned migrations in warehouse/migrations.")
def warehouse_schema(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.MaterializeResult:
    from warehouse.migrate import discover, migrate

    ran = migrate(settings.clickhouse())
    context.log.info(f"applied {len(ran)} migration(s)")
    return dg.MaterializeResult(
        metadata={
            "applied_now": [m.path.name for m in ran],
            "schema_version": max(m.version for m in discover()),
        }
    )


@dg.multi_asset(
    group_name=GROUP,
    specs=[
        dg.AssetSpec(["raw", table], deps=[warehouse_schema], description=f"ClickHouse `{table}`, from Kafka.")
        for table in INGESTED_TABLES
    ],
    description="Consume the platform's topics into the raw tables (effectively once; see docs/warehouse.md).",
)
def raw_ingestion(context: dg.AssetExecutionContext, settings: SettingsResource):  # type: ignore[no-untyped-def]
    from warehouse.ingest import Ingestor

    with Ingestor(settings.get()) as ingestor:
        stats = ingestor.run(until_idle_s=5, max_seconds=600)
        lag = sum(ingestor.lag().values())
    context.log.info(f"ingested {stats.messages} records, {stats.dead_letters} dead letters")
    for table in INGESTED_TABLES:
        yield dg.MaterializeResult(
            asset_key=["raw", table],
            metadata={
                "rows_inserted": stats.rows.get(table, 0),
                "records_read": stats.messages,
                "dead_letters": stats.dead_letters,
                "learners_erased": stats.deleted_learners,
                "remaining_lag": lag,
            },
        )


ingestion_job = dg.define_asset_job("ingestion", selection=dg.AssetSelection.assets(raw_ingestion))


@dg.sensor(job=ingestion_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def ingestion_lag_sensor(context: dg.SensorEvaluationContext, settings: SettingsResource) -> dg.SensorResult:
    """Start ingestion whenever any topic has records the warehouse has not ingested yet."""
    from speech_coach.kafka import consumer_lag

    s = settings.get()
    lag = consumer_lag(s, s.warehouse.ingest_group_id)
    behind = sum(lag.values())
    if behind == 0:
        return dg.SensorResult(skip_reason="no new records")
    # One run per lag snapshot: the key changes as offsets move, so a stuck run is not re-requested.
    key = f"lag-{hash(tuple(sorted(lag.items())))}"
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=key)])


hourly_ingestion = dg.ScheduleDefinition(
    name="hourly_ingestion", job=ingestion_job, cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)  # fmt: skip

defs = dg.Definitions(
    assets=[warehouse_schema, raw_ingestion],
    jobs=[ingestion_job],
    sensors=[ingestion_lag_sensor],
    schedules=[hourly_ingestion],
)
