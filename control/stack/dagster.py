"""Dagster for `make run`: the webserver (UI) and the daemon (schedules, sensors), on the local stack.

They run the code location `orchestration.definitions` as separate processes; the stack only starts them,
it never imports Dagster or the orchestration package.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from control.stack.base import ManagedPart
from control.stack.isolated import settings_env

CODE_LOCATION = "orchestration.definitions"


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


class _DagsterPart(ManagedPart):
    @property
    def home(self) -> Path:
        return self.state_dir / "dagster"

    @property
    def data_dir(self) -> Path:
        return self.home

    @property
    def ui(self) -> str:
        return f"http://{self.host}:{self.settings.dagster.port}"

    def prepare(self) -> None:
        storage = (
            f"storage:\n  postgres:\n    postgres_url: {json.dumps(self.settings.dagster.postgres_url)}\n"
            if self.settings.dagster.postgres_url
            else f"storage:\n  sqlite:\n    base_dir: {json.dumps(str(self.home / 'storage'))}\n"
        )
        (self.home / "dagster.yaml").write_text(
            storage + "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster.core.run_coordinator\n"
            "  class: QueuedRunCoordinator\n  config:\n    max_concurrent_runs: 2\n"
        )

    def env(self) -> dict[str, str]:
        # The same settings the CLI resolved, so the UI's runs reach the same servers.
        return super().env() | settings_env(self.settings) | {"DAGSTER_HOME": str(self.home)}

    def _graphql(self, query: str) -> dict[str, object] | str:
        request = urllib.request.Request(  # noqa: S310 - loopback http URL built from settings
            f"{self.ui}/graphql", data=json.dumps({"query": query}).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback URL from settings
                body: dict[str, object] = json.loads(response.read())
                return body
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return str(exc)


class DagsterWebserverPart(_DagsterPart):
    name = "dagster-ui"

    @property
    def address(self) -> str:
        return self.ui

    port_settings = ("SC_DAGSTER__PORT",)

    def command(self) -> list[str]:
        return [_bin("dagster-webserver"), "-h", self.host, "-p", str(self.settings.dagster.port), "-m", CODE_LOCATION]

    def check(self) -> str | None:
        body = self._graphql("{ version }")
        return body if isinstance(body, str) else None


class DagsterDaemonPart(_DagsterPart):
    name = "dagster-daemon"

    @property
    def address(self) -> str:
        return "schedules and sensors"

    def command(self) -> list[str]:
        return [_bin("dagster-daemon"), "run", "-m", CODE_LOCATION]

    def check(self) -> str | None:
        # The daemon answers no requests; the webserver reports its heartbeats from the shared storage.
        body = self._graphql("{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }")
        if isinstance(body, str):
            return f"UI not reachable to read daemon heartbeats ({body})"
        try:
            statuses = body["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]  # type: ignore[index]
        except (KeyError, TypeError):
            return "no daemon status yet"
        sick = [s["daemonType"] for s in statuses if not s["healthy"]]
        return f"daemons without a heartbeat yet: {', '.join(sick)}" if sick else None
