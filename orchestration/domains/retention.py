"""Retention: recordings are deleted once they are older than the consent notice promises (a daily job)."""

import dagster as dg
from dagster_aws.s3 import S3Resource

from orchestration.resources import SettingsResource


@dg.op(description="Delete the recordings of answers older than SC_BOT__RETENTION_DAYS (S3 objects and references).")
def expire_recordings_op(context: dg.OpExecutionContext, settings: SettingsResource, s3: S3Resource) -> int:
    from speech_coach.db.retention import expire_recordings

    result = expire_recordings(settings.get(), s3.get_client())
    context.log.info(
        f"recordings received before {result.cutoff:%Y-%m-%d %H:%M} UTC: {result.objects_deleted} objects deleted, "
        f"{result.answers_cleared} answers cleared, {result.objects_kept_for_newer_answers} kept for newer answers"
    )
    return result.objects_deleted


@dg.job(description="Enforce the recordings' retention period promised in the consent notice.")
def recording_retention() -> None:
    expire_recordings_op()


daily_retention = dg.ScheduleDefinition(
    name="daily_recording_retention", job=recording_retention, cron_schedule="30 3 * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)  # fmt: skip

defs = dg.Definitions(jobs=[recording_retention], schedules=[daily_retention])
