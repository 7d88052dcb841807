"""The PyFlink jobs for `make run`: `python -m flink_jobs.<job>` as managed child processes.

The stack starts them by module name and never imports `flink_jobs`. Each runs on a local MiniCluster inside its
own process (or submits to SC_FLINK__JOBMANAGER) and restores from its latest checkpoint on every start, so
`down` + `up` continues where it stopped. Healthy once the job was submitted (the driver logs a marker line);
the job process serves /healthz, /readyz and /metrics (Flink's metrics included) on its health port.
"""

from __future__ import annotations

import sys
from pathlib import Path

from control.stack.base import ManagedPart
from control.stack.isolated import settings_env
from control.stack.services import ServicePart
from speech_coach.settings import Settings


class FlinkJobPart(ServicePart):
    def __init__(self, settings: Settings, name: str, module: str, ready_marker: str, port_setting: str) -> None:
        super().__init__(settings, name, [sys.executable, "-m", module], port_setting)
        self.ready_marker = ready_marker

    @property
    def address(self) -> str:
        health = f"metrics http://{self.settings.telemetry.bind_host}:{self.health_port}/metrics"
        if self.settings.flink.jobmanager:
            return f"submitted to Flink at {self.settings.flink.jobmanager}, {health}"
        return f"local Flink MiniCluster, {health}"

    def cwd(self) -> Path:
        # Where `make run` runs: the job reads the same `.env` and relative paths as the CLI did.
        return Path.cwd()

    def env(self) -> dict[str, str]:
        # Every setting the CLI resolved (external servers, topic prefix, engines), so the job sees the same; its
        # health server binds where the settings say, unlike a service's on the stack's host.
        return ManagedPart.env(self) | settings_env(self.settings)

    def check(self) -> str | None:
        return None if self.ready_marker in self.latest_log() else "job not submitted yet"


def answer_job_part(settings: Settings) -> FlinkJobPart:
    return FlinkJobPart(
        settings, "answer-job", "flink_jobs.answers", "answer job submitted", "SC_ANSWERS__HEALTH_PORT",
    )  # fmt: skip


def metrics_job_part(settings: Settings) -> FlinkJobPart:
    return FlinkJobPart(
        settings, "metrics-job", "flink_jobs.metrics", "metrics_job.starting", "SC_METRICS__HEALTH_PORT",
    )  # fmt: skip
