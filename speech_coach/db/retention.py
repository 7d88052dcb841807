"""Recordings are kept `SC_BOT__RETENTION_DAYS` days, as the consent notice promises; then they are deleted.

Audio is content-addressed, so one object can back several answers (the same file sent twice): an object is
deleted once no answer younger than the cutoff uses it, and every older answer then loses its reference. Objects
go first, references after, in one transaction: a failure between the two leaves references to deleted objects,
which the next run clears (a missing object counts as deleted), never an object nobody can find again. The
transcripts, scores and metrics stay; only the recordings go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from botocore.exceptions import ClientError

from speech_coach.settings import Settings


@dataclass(frozen=True)
class RetentionResult:
    cutoff: datetime
    objects_deleted: int
    answers_cleared: int
    objects_kept_for_newer_answers: int


def expire_recordings(settings: Settings, s3: Any, now: datetime | None = None, batch: int = 500) -> RetentionResult:
    """Delete the recordings of answers received before the cutoff; returns what was done."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.bot.retention_days)
    deleted = cleared = kept = 0
    with psycopg.connect(settings.postgres_url) as conn:
        while True:
            with conn.transaction():
                rows = conn.execute(
                    "SELECT id, bucket, object_key FROM answers WHERE object_key IS NOT NULL AND received_at < %s "
                    "ORDER BY received_at LIMIT %s FOR UPDATE SKIP LOCKED",
                    (cutoff, batch),
                ).fetchall()
                if not rows:
                    break
                for bucket, key in sorted({(b, k) for _, b, k in rows}):
                    younger = conn.execute(
                        "SELECT 1 FROM answers WHERE object_key = %s AND received_at >= %s LIMIT 1", (key, cutoff)
                    ).fetchone()
                    if younger is not None:
                        kept += 1
                        continue
                    try:
                        s3.delete_object(Bucket=bucket, Key=key)
                    except ClientError as exc:
                        if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                            raise
                    deleted += 1
                conn.execute(
                    "UPDATE answers SET object_key = NULL, bucket = NULL WHERE id = ANY(%s)", ([r[0] for r in rows],)
                )
                cleared += len(rows)
    return RetentionResult(cutoff, deleted, cleared, kept)
