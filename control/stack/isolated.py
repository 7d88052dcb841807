"""Settings for a private stack on free ports: used by tests, benchmarks and the simulator's checks."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from speech_coach.settings import Settings

# Every port a stack may open, as an offset from a block of free ports, so one never collides with `make run`'s:
# the servers, SeaweedFS's seven internal ports (from `internal_port_base`), one spare, the job, ingestion, Dagster
# and bot health servers, and the bot's webhook.
PORT_OFFSETS: dict[str, dict[str, int]] = {
    "postgres": {"port": 0},
    "kafka": {"port": 1},
    "clickhouse": {"tcp_port": 2, "http_port": 3},
    "s3": {"port": 4, "internal_port_base": 5},
    "answers": {"health_port": 13},
    "metrics": {"health_port": 14},
    "warehouse": {"ingest_health_port": 15},
    "dagster": {"port": 16},
    "bot": {"health_port": 17, "webhook_port": 18},
}
PORTS_NEEDED = 1 + max(offset for fields in PORT_OFFSETS.values() for offset in fields.values())


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


def local_settings() -> Settings:
    """The environment's settings for the local platform: `local` unless SC_ENVIRONMENT says otherwise, set
    explicitly, so the parts this process runs in-process or starts accept what only a local stack may."""
    settings = Settings()
    if "environment" in settings.model_fields_set:
        return settings
    return settings.model_copy(update={"environment": "local"})


def isolated_settings(state_dir: Path, **overrides: Any) -> Settings:
    """Settings for a stack of its own: its own state dir and free ports, nothing read from the environment."""
    base = free_port_block(PORTS_NEEDED)
    values: dict[str, Any] = {
        section: {name: base + offset for name, offset in fields.items()} for section, fields in PORT_OFFSETS.items()
    }
    values |= {"environment": "test", "stack": {"state_dir": state_dir}}
    values.update(overrides)
    return Settings(_env_file=None, **values)


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as an SC_* variable, so a child process resolves exactly these settings.

    Whole, not just the local ports: a child of a stack that uses external servers, a topic prefix or other
    overrides must see them too, or it quietly talks to the defaults.
    """
    env: dict[str, str] = {}

    def walk(model: BaseModel, prefix: str) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            key = f"{prefix}{name.upper()}"
            if isinstance(value, BaseModel):
                walk(value, f"{key}__")
            elif value is None:
                continue
            elif isinstance(value, SecretStr):
                env[key] = value.get_secret_value()
            elif isinstance(value, bool):
                env[key] = "true" if value else "false"
            elif isinstance(value, Path):
                env[key] = str(value.expanduser().resolve())  # children may run in another directory
            elif isinstance(value, list | tuple | set | dict):
                env[key] = json.dumps(sorted(value) if isinstance(value, set) else value)
            else:
                env[key] = str(value)

    walk(settings, "SC_")
    return env
