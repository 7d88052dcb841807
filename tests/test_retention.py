"""The consent notice promises recordings are kept SC_BOT__RETENTION_DAYS days: the daily Dagster job deletes older
ones from S3 and clears their references, keeping an object a newer answer still uses (audio is content-addressed).
Run here with a one-day retention on answers backdated by days."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from control.stack import Stack
from speech_coach.db import upgrade
from speech_coach.s3 import s3_client
from speech_coach.settings import Settings

pytestmark = pytest.mark.stack


def test_recordings_older_than_the_retention_period_are_deleted(
    stack: Stack, pg_database: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestration.definitions import defs
    from orchestration.resources import SettingsResource, s3_resource

    monkeypatch.setenv("SC_POSTGRES__URL", pg_database)
    monkeypatch.setenv("SC_BOT__RETENTION_DAYS", "1")
    for key, value in {"SC_S3__PORT": str(stack.settings.s3.port), "SC_S3__AUDIO_BUCKET": s3_bucket}.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    upgrade(settings)
    s3 = s3_client(settings)
    now = datetime.now(UTC)
    learner = uuid.uuid4()
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO questions (id, bank_version, track, task_type, title, prompt, preparation_time_s, "
                     "speaking_time_s, difficulty) VALUES ('q1', 'v1', 'toefl', 'toefl_independent', 't', 'p', 15, 45, "
                     "'easy')")  # fmt: skip
        conn.execute(
            "INSERT INTO learners (id, telegram_user_id, chat_id, pseudonym) VALUES (%s, 1, 1, 'L1')", (learner,)
        )
        # old-only: gone; shared by an old and a new answer: kept; new-only: kept.
        for n, (key, age_days) in enumerate([("old", 3), ("shared", 2), ("shared", 0), ("new", 0)]):
            object_key = f"audio/{key}.ogg"
            s3.put_object(Bucket=s3_bucket, Key=object_key, Body=b"OggS" + key.encode())
            conn.execute(
                "INSERT INTO answers (id, learner_id, question_id, chat_id, message_id, update_id, file_unique_id, "
                "question_sent_at, received_at, duration_s, mime_type, size_bytes, bucket, object_key, status) "
                "VALUES (%s, %s, 'q1', 1, %s, %s, %s, %s, %s, 40, 'audio/ogg', 100, %s, %s, 'delivered')",
                (uuid.uuid4(), learner, n, n, f"u{n}", now - timedelta(days=age_days, minutes=2),
                 now - timedelta(days=age_days), s3_bucket, object_key),
            )  # fmt: skip
    job = defs.get_job_def("recording_retention")
    assert defs.resolve_schedule_def("daily_recording_retention").job_name == "recording_retention"
    resources = {"settings": SettingsResource(), "s3": s3_resource(settings)}
    result = job.execute_in_process(resources=resources)
    assert result.success and result.output_for_node("expire_recordings_op") == 1
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket).get("Contents", []))
    assert keys == ["audio/new.ogg", "audio/shared.ogg"]
    with psycopg.connect(settings.postgres_url) as conn:
        kept = conn.execute(
            "SELECT object_key, received_at > now() - interval '1 day' FROM answers ORDER BY received_at"
        ).fetchall()
    assert kept == [(None, False), (None, False), ("audio/shared.ogg", True), ("audio/new.ogg", True)]
    again = job.execute_in_process(resources=resources)  # nothing left to do
    assert again.success and again.output_for_node("expire_recordings_op") == 0
