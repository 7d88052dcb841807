"""`make run` starts the answer job as a managed part: healthy once submitted, stopped by `make down`."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.stack import Stack
from control.stack.isolated import free_port_block
from speech_coach.settings import DagsterSettings, MetricsSettings, WarehouseSettings
from tests.conftest import using_servers_of

pytestmark = pytest.mark.stack


def test_make_run_starts_and_stops_the_answer_job(stack: Stack, tmp_path: Path) -> None:
    settings = using_servers_of(
        stack,
        tmp_path / "state",
        dagster=DagsterSettings(enabled=False),
        metrics=MetricsSettings(enabled=False),  # the metrics job has its own tests
        warehouse=WarehouseSettings(ingest_health_port=free_port_block(1)),
    )
    # Topics of its own: the job must not answer other tests' records on the shared broker.
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topic_prefix": "run-test."})})
    platform = Stack(settings, platform=True)
    result = platform.up()
    try:
        assert result.started == ["ingest", "answer-job"]
        states = {st.name: st for st in platform.status()}
        assert states["answer-job"].state == "healthy" and states["answer-job"].pid
        assert platform.up().already_running == ["ingest", "answer-job"]  # a second `make run` starts nothing
    finally:
        assert platform.down() == ["answer-job", "ingest"]
    assert platform.answer_job.running() is None


def test_the_job_process_gets_every_setting(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from control.stack.isolated import settings_env as as_environment
    from speech_coach.settings import Settings

    settings = using_servers_of(stack, tmp_path / "state", openai={"api_key": "sk-abc", "base_url": "http://x/v1"})
    env = as_environment(settings)
    assert env["SC_KAFKA__BOOTSTRAP_SERVERS"] == stack.settings.kafka_bootstrap
    assert env["SC_OPENAI__API_KEY"] == "sk-abc" and env["SC_ANSWERS__ENABLED"] == "true"
    assert "SC_TRANSCRIPTION__MODEL_DIR" not in env  # unset stays unset
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None).model_dump() == settings.model_dump()  # type: ignore[call-arg]
