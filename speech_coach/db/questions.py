"""Load the question bank into PostgreSQL: upsert every item, retire (never delete) the ones removed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from speech_coach.questions import QuestionBank
from speech_coach.settings import Settings

COLUMNS = [
    "id", "bank_version", "track", "task_type", "title", "prompt", "reading", "listening", "sentence", "tip",
    "set_id", "set_position", "preparation_time_s", "speaking_time_s", "difficulty", "tags", "retired_at",
]  # fmt: skip


@dataclass(frozen=True)
class SyncResult:
    upserted: int
    retired: list[str]


def sync_questions(settings: Settings, bank: QuestionBank) -> SyncResult:
    now = datetime.now(UTC)
    rows = []
    for q in bank.items:
        retired_at = datetime.combine(q.retired_at, datetime.min.time(), UTC) if q.retired_at else None
        rows.append((
            q.id, bank.version, q.track.value, q.task_type.value, q.title, q.prompt, q.reading, q.listening,
            q.sentence, q.tip, q.set_id, q.set_position, q.preparation_time_s, q.speaking_time_s,
            q.difficulty.value, list(q.tags), retired_at,
        ))  # fmt: skip
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:])
    with psycopg.connect(settings.postgres_url) as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO questions ({', '.join(COLUMNS)}, updated_at) "
            f"VALUES ({', '.join(['%s'] * len(COLUMNS))}, %s) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = EXCLUDED.updated_at",
            [(*row, now) for row in rows],
        )
        cur.execute(
            "UPDATE questions SET retired_at = %s, updated_at = %s "
            "WHERE retired_at IS NULL AND NOT (id = ANY(%s)) RETURNING id",
            (now, now, [q.id for q in bank.items]),
        )
        retired = sorted(r[0] for r in cur.fetchall())
    return SyncResult(upserted=len(rows), retired=retired)
