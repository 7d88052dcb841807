"""Settings for a private stack on free ports: used by tests, benchmarks and the simulator's checks."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from speech_coach.settings import (
    ClickHouseSettings,
    KafkaSettings,
    PostgresSettings,
    S3Settings,
    Settings,
    StackSettings,
)

PORTS_NEEDED = 13  # postgres, kafka, clickhouse x2, s3 + 7 SeaweedFS-internal, 1 spare


def free_port_block(size: int, host: str = "127.0.0.1") -> int:
    """First port of `size` consecutive ports that are free on `host` right now."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((host, 0))
            start = int(probe.getsockname()[1])
        if start + size >= 65535:
            continue
        socks = []
        try:
            for port in range(start, start + size):
                sock = socket.socket()
                socks.append(sock)
                sock.bind((host, port))
            return start
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no block of {size} free ports on {host}")


def isolated_settings(state_dir: Path, **overrides: Any) -> Settings:
    """Settings for a stack of its own: its own state dir and free ports, nothing read from the environment."""
    base = free_port_block(PORTS_NEEDED)
    values: dict[str, Any] = {
        "environment": "test",
        "stack": StackSettings(state_dir=state_dir, start_timeout_s=60),
        "postgres": PostgresSettings(port=base),
        "kafka": KafkaSettings(port=base + 1),
        "clickhouse": ClickHouseSettings(tcp_port=base + 2, http_port=base + 3),
        "s3": S3Settings(port=base + 4, internal_port_base=base + 5),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The local-stack part of `settings` as SC_* environment variables, for child processes."""
    return {
        "SC_STACK__STATE_DIR": str(settings.stack.state_dir),
        "SC_STACK__START_TIMEOUT_S": str(settings.stack.start_timeout_s),
        "SC_POSTGRES__PORT": str(settings.postgres.port),
        "SC_KAFKA__PORT": str(settings.kafka.port),
        "SC_CLICKHOUSE__TCP_PORT": str(settings.clickhouse.tcp_port),
        "SC_CLICKHOUSE__HTTP_PORT": str(settings.clickhouse.http_port),
        "SC_S3__PORT": str(settings.s3.port),
        "SC_S3__INTERNAL_PORT_BASE": str(settings.s3.internal_port_base),
    }
