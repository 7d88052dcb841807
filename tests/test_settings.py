from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from speech_coach.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_point_at_the_local_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.kafka_bootstrap == "127.0.0.1:59092"
    assert s.postgres_url == "postgresql://postgres@127.0.0.1:55432/speech_coach"
    assert s.clickhouse_url == "clickhouse://default@127.0.0.1:59000/speech_coach"
    assert s.s3_endpoint == "http://127.0.0.1:58333"
    assert s.state_dir == (Path.cwd() / ".local").resolve()


def test_environment_overrides_and_external_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SC_KAFKA__BOOTSTRAP_SERVERS", "kafka-0.prod:9092,kafka-1.prod:9092")
    monkeypatch.setenv("SC_POSTGRES__URL", "postgresql://app:s3cret-pw@db.prod:5432/coach")
    monkeypatch.setenv("SC_S3__SECRET_KEY", "very-secret-key")
    monkeypatch.setenv("SC_CLICKHOUSE__TCP_PORT", "9123")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.kafka_bootstrap == "kafka-0.prod:9092,kafka-1.prod:9092"
    assert s.postgres_url == "postgresql://app:s3cret-pw@db.prod:5432/coach"
    assert s.clickhouse_url.endswith(":9123/speech_coach")
    assert set(s.secret_values()) == {"s3cret-pw", "very-secret-key", "local-development-pseudonym-key"}
    # Secrets never show up in reprs that may be logged.
    assert "very-secret-key" not in repr(s)


@pytest.mark.parametrize(
    ("var", "value", "field"),
    [
        ("SC_KAFKA__PORT", "70000", "kafka.port"),
        ("SC_STACK__HOST", "0.0.0.0", "stack.host"),
        ("SC_POSTGRES__URL", "mysql://x@y/z", "postgres.url"),
        ("SC_CLICKHOUSE__URL", "http://ch:8123", "clickhouse.url"),
    ],
)
def test_invalid_values_name_the_field(monkeypatch: pytest.MonkeyPatch, var: str, value: str, field: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)  # type: ignore[call-arg]
    assert field in str(info.value)


def test_env_example_documents_every_variable() -> None:
    documented = set(re.findall(r"^#?\s*(SC_[A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))

    def walk(model: type, prefix: str) -> set[str]:
        names = set()
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            ann = field.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                names |= walk(ann, f"{prefix}{name.upper()}__")
            else:
                names.add(f"{prefix}{name.upper()}")
        return names

    expected = walk(Settings, "SC_")
    assert expected - documented == set(), "undocumented variables"
    assert documented - expected == set(), "documented variables that do not exist"


def test_env_example_defaults_match_the_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Loading .env.example as an env file must give exactly the built-in defaults.
    example = Settings(_env_file=ROOT / ".env.example")  # type: ignore[call-arg]
    default = Settings(_env_file=None)  # type: ignore[call-arg]
    assert example.model_dump() == default.model_dump()


def test_settings_env_round_trips_every_setting(tmp_path) -> None:
    """A child process started with settings_env resolves exactly the parent's settings."""
    import os
    from unittest import mock

    from control.stack.isolated import settings_env
    from speech_coach.settings import Settings
    from tests.conftest import make_settings

    parent = make_settings(
        tmp_path,
        kafka={"bootstrap_servers": "broker-1:9092,broker-2:9092", "topic_prefix": "staging."},
        clickhouse={"url": "clickhouse://u:p@ch:9000/wh"},
        s3={"secret_key": "s3cr3t-value"},
        java={"home": tmp_path / "jdk"},
        dagster={"enabled": False},
    )
    with mock.patch.dict(os.environ, settings_env(parent), clear=True):
        child = Settings(_env_file=None)
    assert child.model_dump() == parent.model_dump()
    assert child.s3.secret_key.get_secret_value() == "s3cr3t-value"
