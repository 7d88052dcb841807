"""The platform's own long-running services on the local stack (`make run`), each a Python process with
`/healthz`, `/readyz` and `/metrics`. The stack starts them by command; it never imports a runtime.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

from control.stack.base import ManagedPart, setting_value
from control.stack.isolated import settings_env
from speech_coach.settings import Settings


class ServicePart(ManagedPart):
    """One service: `command` runs it; the port in `port_setting` answers its probes."""

    def __init__(self, settings: Settings, name: str, command: list[str], port_setting: str) -> None:
        super().__init__(settings)
        self.name = name
        self._command = command
        self.port_settings = (port_setting,)

    @property
    def health_port(self) -> int:
        return int(setting_value(self.settings, self.port_settings[0]))

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.health_port}"

    def command(self) -> list[str]:
        return self._command

    def env(self) -> dict[str, str]:
        # The settings this CLI resolved, so the service reaches the same servers.
        return super().env() | settings_env(self.settings) | {"SC_TELEMETRY__BIND_HOST": self.host}

    def check(self) -> str | None:
        try:
            with urllib.request.urlopen(f"{self.address}/readyz", timeout=3) as response:  # noqa: S310 - loopback
                return None if response.status == 200 else f"readyz answered {response.status}"
        except urllib.error.HTTPError as exc:
            return f"readyz answered {exc.code}: {exc.read()[:200].decode(errors='replace')}"
        except (urllib.error.URLError, OSError) as exc:
            return str(exc)


def _script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def ingest_part(settings: Settings) -> ServicePart:
    return ServicePart(
        settings,
        "ingest",
        [_script("speech-coach"), "warehouse", "ingest", "--follow"],
        "SC_WAREHOUSE__INGEST_HEALTH_PORT",
    )
