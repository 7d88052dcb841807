"""Dagster for `make run`: one code server, the webserver (UI) and the daemon (schedules, sensors), on the local stack.

The code server loads the code location `orchestration.definitions` once (a `dagster code-server start`, as
`dagster dev` runs one); the UI and the daemon both reach it over a Unix socket named in `workspace.yaml`, so the
definitions (and a first `dbt parse`) are not loaded twice, and the UI's "Reload" still picks up edited code.
The stack only starts these processes; it never imports Dagster or the orchestration package.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from control.stack.base import ManagedPart
from control.stack.isolated import settings_env
from speech_coach.settings import Settings

CODE_LOCATION = "orchestration.definitions"
# Unix socket paths are limited to 107 bytes; deep state dirs (pytest's) get a short one in the temp dir.
_MAX_SOCKET_PATH = 100


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


class _DagsterPart(ManagedPart):
    @property
    def home(self) -> Path:
        """DAGSTER_HOME: the instance every Dagster process of this stack (and the simulator) shares."""
        return self.state_dir / "dagster"

    @property
    def data_dir(self) -> Path:
        return self.home

    @property
    def ui(self) -> str:
        return f"http://{self.host}:{self.settings.dagster.port}"

    @property
    def socket(self) -> Path:
        path = self.home / "code.sock"
        if len(str(path)) <= _MAX_SOCKET_PATH:
            return path
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"speech-coach-dagster-{digest}.sock"

    def write_instance_config(self) -> None:
        """dagster.yaml and workspace.yaml in DAGSTER_HOME (idempotent; also for in-process materializations)."""
        storage = (
            f"storage:\n  postgres:\n    postgres_url: {json.dumps(self.settings.dagster.postgres_url)}\n"
            if self.settings.dagster.postgres_url
            else f"storage:\n  sqlite:\n    base_dir: {json.dumps(str(self.home / 'storage'))}\n"
        )
        instance = (
            storage + "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster.core.run_coordinator\n"
            "  class: QueuedRunCoordinator\n  config:\n    max_concurrent_runs: 2\n"
        )
        workspace = (
            f"load_from:\n  - grpc_server:\n      socket: {json.dumps(str(self.socket))}\n"
            f"      location_name: {json.dumps(CODE_LOCATION)}\n"
        )
        self.home.mkdir(parents=True, exist_ok=True)
        for name, text in (("dagster.yaml", instance), ("workspace.yaml", workspace)):
            # The three Dagster parts start side by side: never let one read a half-written file.
            path = self.home / name
            if not path.exists() or path.read_text() != text:
                tmp = path.with_name(f".{name}.{self.name}.tmp")
                tmp.write_text(text)
                tmp.replace(path)

    def prepare(self) -> None:
        self.write_instance_config()

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


class DagsterCodeServerPart(_DagsterPart):
    name = "dagster-code"
    started_marker = f"Started Dagster code proxy server for module {CODE_LOCATION}"
    load_error_marker = "Error while importing code"

    @property
    def address(self) -> str:
        return f"code location {CODE_LOCATION} on {self.socket}"

    def command(self) -> list[str]:
        return [_bin("dagster"), "code-server", "start", "-m", CODE_LOCATION, "--socket", str(self.socket),
                "--location-name", CODE_LOCATION]  # fmt: skip

    def prepare(self) -> None:
        super().prepare()
        self.socket.unlink(missing_ok=True)  # a stale socket of a killed server would refuse the bind

    def failure(self) -> str | None:
        log = self.latest_log()
        if self.load_error_marker not in log:
            return None
        # The last line of the traceback names the error, e.g. "SyntaxError: ..." or "DagsterImportError: ...".
        errors = [ln.strip() for ln in log.splitlines() if re.match(r"^[\w.]+(Error|Exception)\b", ln.strip())]
        return f"the definitions in {CODE_LOCATION} failed to load ({errors[-1][:200] if errors else 'see its log'})"

    def check(self) -> str | None:
        if (failed := self.failure()) is not None:
            return failed
        if self.started_marker not in self.latest_log():
            return "loading the definitions"
        return None if self.socket.exists() else f"no socket at {self.socket}"


class DagsterWebserverPart(_DagsterPart):
    name = "dagster-ui"

    @property
    def address(self) -> str:
        return self.ui

    port_settings = ("SC_DAGSTER__PORT",)

    def command(self) -> list[str]:
        return [_bin("dagster-webserver"), "-h", self.host, "-p", str(self.settings.dagster.port),
                "-w", str(self.home / "workspace.yaml")]  # fmt: skip

    def check(self) -> str | None:
        # Ready when the UI shows the code location, not merely when it answers.
        body = self._graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename "
            "... on PythonError { message } } } } } }"
        )
        if isinstance(body, str):
            return body
        try:
            entries = body["data"]["workspaceOrError"]["locationEntries"]  # type: ignore[index]
            loaded = entries[0]["locationOrLoadError"]
        except (KeyError, TypeError, IndexError):
            return "no code location yet"
        if loaded is None:
            return "loading the code location"
        if loaded["__typename"] == "PythonError":
            return f"code location not loaded: {str(loaded.get('message', '')).strip()[:200]}"
        return None


class DagsterDaemonPart(_DagsterPart):
    name = "dagster-daemon"

    @property
    def address(self) -> str:
        return "schedules and sensors"

    def command(self) -> list[str]:
        return [_bin("dagster-daemon"), "run", "-w", str(self.home / "workspace.yaml")]

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


def prepared_home(settings: Settings) -> Path:
    """The DAGSTER_HOME of this stack's UI and daemon, configured: where in-process runs (the simulator's) must go
    for the UI to show them."""
    part = DagsterWebserverPart(settings)
    part.write_instance_config()
    return part.home
