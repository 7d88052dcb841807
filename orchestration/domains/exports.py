"""Research exports: monthly, consent-filtered, pseudonymized datasets written to S3 with a codebook."""

import io
import re
from datetime import date

import dagster as dg
from dagster_aws.s3 import S3Resource

from orchestration.resources import SettingsResource

GROUP = "research_exports"
monthly = dg.MonthlyPartitionsDefinition(start_date="2025-01-01", end_offset=1)


def export_month(partition_key: str) -> date:
    """The month an export request names. Only a first-of-month date among the partitions is accepted: the key
    becomes an S3 prefix and a query parameter, so anything else is refused before either is built."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-01", partition_key):
        raise ValueError(f"not a month partition (YYYY-MM-01): {partition_key[:40]!r}")
    if partition_key not in monthly.get_partition_keys():
        raise ValueError(f"no export for {partition_key}: months run from 2025-01 to the current one")
    return date.fromisoformat(partition_key)


@dg.asset(
    group_name=GROUP,
    partitions_def=monthly,
    deps=[dg.AssetKey("research_answers")],
    description="A month of research_answers as Parquet, CSV and DuckDB with datapackage.json (the codebook) "
    "and README.md, in the exports bucket under research/answers/YYYY-MM/.",
)
def research_export(
    context: dg.AssetExecutionContext, settings: SettingsResource, s3: S3Resource
) -> dg.MaterializeResult:
    from orchestration.domains.learners import copy_learners, erased_learners
    from speech_coach.privacy import require_private_key
    from warehouse.exports import build_export, fetch_month

    month = export_month(context.partition_key)
    s = settings.get()
    require_private_key(s, "the research export")
    # Consent and deletion as they are now, not as of the marts' last build: withdrawals and deletions since
    # then never reach a release.
    copy_learners(settings)
    rows = fetch_month(settings.clickhouse(), month, erased_learners(settings))
    files = build_export(rows, month)
    prefix = f"research/answers/{month:%Y-%m}/"
    client = s3.get_client()
    for f in files:
        client.put_object(Bucket=s.s3.exports_bucket, Key=prefix + f.name, Body=f.data, ContentType=f.media_type)
    link = client.generate_presigned_url(
        "get_object", Params={"Bucket": s.s3.exports_bucket, "Key": prefix + "datapackage.json"}, ExpiresIn=7 * 86400
    )
    return dg.MaterializeResult(
        metadata={
            "rows": len(rows),
            "learners": len({r["learner_pseudonym"] for r in rows}),
            "location": f"s3://{s.s3.exports_bucket}/{prefix}",
            "download (7 days)": dg.MetadataValue.url(link),
            "files": dg.MetadataValue.json({f.name: {"sha256": f.sha256, "bytes": len(f.data)} for f in files}),
        }
    )


@dg.asset_check(
    asset=research_export,
    description="The released files themselves hold no Telegram id, chat id or internal learner id, no e-mail "
    "address and no phone number (every release in the bucket is read).",
)
def export_has_no_personal_data(settings: SettingsResource, s3: S3Resource) -> dg.AssetCheckResult:
    import pyarrow.parquet as pq

    from warehouse.exports import COLUMNS, contact_details

    s = settings.get()
    forbidden = [c for c in COLUMNS if any(w in c for w in ("telegram", "username", "first_name", "last_name", "chat"))]
    operational = _operational_ids(settings)
    client = s3.get_client()
    found = {"operational_ids": 0, "emails": 0, "phone_numbers": 0}
    releases = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s.s3.exports_bucket, Prefix="research/"):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".parquet"):
                continue
            releases += 1
            body = client.get_object(Bucket=s.s3.exports_bucket, Key=obj["Key"])["Body"].read()
            table = pq.read_table(io.BytesIO(body)).to_pylist()
            for row in table:
                for value in row.values():
                    text = str(value)
                    found["operational_ids"] += any(token in operational for token in re.findall(r"[\w-]+", text))
                    if isinstance(value, str):
                        email, phone = contact_details(value)
                        found["emails"] += email
                        found["phone_numbers"] += phone
    return dg.AssetCheckResult(
        passed=not forbidden and not any(found.values()),
        metadata={"forbidden_columns": forbidden, "files_checked": releases, **found},  # counts, never the values
    )


def _operational_ids(settings: SettingsResource) -> set[str]:
    """Every Telegram id, chat id and internal learner id the operational database knows, as text."""
    import psycopg

    with psycopg.connect(settings.get().postgres_url) as conn:
        rows = conn.execute(
            "SELECT telegram_user_id::text, chat_id::text, id::text, replace(id::text, '-', '') FROM learners "
            "UNION ALL SELECT telegram_user_id::text, chat_id::text, NULL, NULL FROM payments"
        ).fetchall()
    return {value for row in rows for value in row if value}


defs = dg.Definitions(assets=[research_export], asset_checks=[export_has_no_personal_data])
