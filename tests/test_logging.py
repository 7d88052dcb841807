from __future__ import annotations

import json

import pytest
import structlog

from speech_coach.logging import configure_logging, get_logger


def test_logs_are_json_and_secrets_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "s3cr3t-token-value"
    configure_logging("INFO", json_output=True, secrets=[secret, "xy"])
    log = get_logger("test")
    log.info("connecting", url=f"postgresql://app:{secret}@db/x", nested={"k": [secret]}, short="xy")
    log.debug("hidden")
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "connecting" and record["level"] == "info" and "timestamp" in record
    assert secret not in lines[0]
    assert record["url"] == "postgresql://app:***@db/x" and record["nested"] == {"k": ["***"]}
    # Values too short to be secrets are left alone rather than redacting every "xy" in every log line.
    assert record["short"] == "xy"
    structlog.reset_defaults()
