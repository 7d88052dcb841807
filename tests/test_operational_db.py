"""The operational PostgreSQL schema (Alembic) and the question bank loaded into it by Dagster."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from speech_coach.db import current_revision, upgrade
from speech_coach.questions import DEFAULT_BANK_DIR, load_bank
from speech_coach.settings import Settings

pytestmark = pytest.mark.stack


@pytest.fixture
def pg_settings(pg_database: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("SC_POSTGRES__URL", pg_database)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_migrations_apply_idempotently(pg_settings: Settings) -> None:
    assert current_revision(pg_settings) is None
    upgrade(pg_settings)
    upgrade(pg_settings)
    assert current_revision(pg_settings) == "0004_answer_publish_lease"
    with psycopg.connect(pg_settings.postgres_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO questions (id, bank_version, track, task_type, title, prompt, preparation_time_s, "
            "speaking_time_s, difficulty) VALUES ('x', 'v', 'toefl', 'toefl_independent', 't', 'p', 0, 0, 'easy')"
        )


def test_bank_is_upserted_and_removed_questions_are_retired(pg_settings: Settings, tmp_path: Path) -> None:
    from orchestration.domains.question_bank import question_bank_postgres
    from orchestration.resources import SettingsResource

    bank = load_bank()
    resources = {"settings": SettingsResource()}

    def run(directory: str = "") -> dg.ExecuteInProcessResult:
        config = {"ops": {"operational__questions": {"config": {"directory": directory}}}}
        result = dg.materialize([question_bank_postgres], resources=resources, run_config=config)
        assert result.success
        return result

    run()
    run()  # idempotent
    with psycopg.connect(pg_settings.postgres_url) as conn:
        total, active = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE retired_at IS NULL) FROM questions"
        ).fetchone()
        assert total == len(bank.items) and active == len([q for q in bank.items if not q.retired])
        row = conn.execute(
            "SELECT track, speaking_time_s, bank_version FROM questions WHERE id = %s", (bank.items[0].id,)
        ).fetchone()
        assert row == (bank.items[0].track.value, bank.items[0].speaking_time_s, bank.version)

    # A release without the workplace file: those questions are retired, not deleted.
    smaller = tmp_path / "bank"
    shutil.copytree(DEFAULT_BANK_DIR, smaller)
    (smaller / "workplace.yaml").unlink()
    result = run(str(smaller))
    retired = result.asset_materializations_for_node("operational__questions")[0].metadata["retired_now"].value
    workplace = {q.id for q in bank.items if q.task_type.value == "workplace"}
    assert set(retired) == workplace and len(workplace) >= 40
    with psycopg.connect(pg_settings.postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM questions").fetchone()[0] == len(bank.items)
        still = conn.execute(
            "SELECT count(*) FROM questions WHERE task_type = 'workplace' AND retired_at IS NULL"
        ).fetchone()[0]
        assert still == 0
