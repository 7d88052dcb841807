"""The windowed metrics job for `make run`: `python -m flink_jobs.metrics` as a managed process.

The core only starts it (the job imports the core, never the other way round). It restores from its latest
checkpoint on every start, so `down` + `up` continues where it stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path

from speech_coach.stack.base import ManagedPart
from speech_coach.stack.isolated import settings_env


class MetricsJobPart(ManagedPart):
    name = "metrics-job"

    @property
    def external(self) -> bool:
        # A remote JobManager runs the job itself; locally it runs in a MiniCluster in this process.
        return False

    @property
    def address(self) -> str:
        target = self.settings.flink.jobmanager or "local MiniCluster"
        return f"PyFlink job ({target})"

    def ports(self) -> list[int]:
        return []

    def command(self) -> list[str]:
        return [sys.executable, "-m", "flink_jobs.metrics"]

    def env(self) -> dict[str, str]:
        return super().env() | settings_env(self.settings)

    def cwd(self) -> Path:
        # Where `make run` runs: the job reads the same `.env` and relative state dir as the CLI did.
        return Path.cwd()

    def check(self) -> str | None:
        # Healthy once the JobManager has started it (the driver logs the submission); until then, starting.
        try:
            text = self.log_file.read_text(errors="replace")[-200_000:]
        except OSError:
            return "no log yet"
        return None if "metrics_job.starting" in text.rsplit("--- starting", 1)[-1] else "starting"
