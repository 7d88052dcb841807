"""The PyFlink answer job for `make run`: `python -m flink_jobs.answers` as a managed child process.

The core starts it by module name and never imports `flink_jobs`. It runs on a local MiniCluster inside that
process; healthy once the job was submitted (its log says so after the latest start).
"""

from __future__ import annotations

import sys
from pathlib import Path

from speech_coach.stack.base import ManagedPart
from speech_coach.stack.isolated import settings_env

READY = "answer job submitted"


class AnswerJobPart(ManagedPart):
    name = "answer-job"

    @property
    def external(self) -> bool:
        return False

    @property
    def address(self) -> str:
        if self.settings.flink.jobmanager:
            return f"submitted to Flink at {self.settings.flink.jobmanager}"
        return "local Flink MiniCluster"

    def ports(self) -> list[int]:
        return []

    def cwd(self) -> Path:
        return Path.cwd()

    def env(self) -> dict[str, str]:
        # Every setting the CLI resolved (external servers, topic prefix, engines), so the job sees the same.
        return super().env() | settings_env(self.settings)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "flink_jobs.answers"]

    def check(self) -> str | None:
        try:
            log = self.log_file.read_text(errors="replace")
        except OSError:
            return "no log yet"
        latest = log.rpartition(f"--- starting {self.name} at")[2]
        return None if READY in latest else "job not submitted yet"
