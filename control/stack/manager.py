"""The local stack as a whole: start in dependency order, health-check, stop only what it started."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from control.stack.base import ManagedPart, PartStatus, StackError
from control.stack.bot import BotPart
from control.stack.broker import BrokerPart
from control.stack.clickhouse import ClickHousePart
from control.stack.dagster import DagsterDaemonPart, DagsterWebserverPart
from control.stack.flink_jobs import answer_job_part, metrics_job_part
from control.stack.objectstore import ObjectStorePart
from control.stack.postgres import PostgresPart
from control.stack.services import ingest_part
from speech_coach.settings import Settings
from speech_coach.tools import ToolError, find_ffmpeg, find_java


@dataclass
class UpResult:
    started: list[str]
    already_running: list[str]
    external: list[str]
    seconds: float


Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


class Stack:
    """The backing servers; with `platform=True` also the platform's own services (`make run`)."""

    def __init__(self, settings: Settings, *, platform: bool = False) -> None:
        self.settings = settings
        self.s3 = ObjectStorePart(settings)
        self.kafka = BrokerPart(settings)
        self.postgres = PostgresPart(settings)
        self.clickhouse = ClickHousePart(settings)
        self.dagster_ui = DagsterWebserverPart(settings)
        self.dagster_daemon = DagsterDaemonPart(settings)
        self.ingest = ingest_part(settings)
        self.bot = BotPart(settings)
        self.metrics_job = metrics_job_part(settings)
        self.answer_job = answer_job_part(settings)
        self.platform = platform

    @property
    def servers(self) -> list[ManagedPart]:
        return [self.s3, self.kafka, self.postgres, self.clickhouse]

    @property
    def platform_parts(self) -> list[ManagedPart]:
        parts: list[ManagedPart] = [self.ingest]
        if self.settings.dagster.enabled:
            parts += [self.dagster_ui, self.dagster_daemon]
        if self.settings.answers.enabled:
            parts.append(self.answer_job)
        if self.settings.metrics.enabled:
            parts.append(self.metrics_job)
        if self.bot.configured:  # without a token there is nothing to run; `speech-coach run` says so
            parts.append(self.bot)
        return parts

    @property
    def stoppable_platform_parts(self) -> list[ManagedPart]:
        # Whatever an earlier `run` started stops, even if its settings changed since.
        return [self.ingest, self.dagster_ui, self.dagster_daemon, self.answer_job, self.metrics_job, self.bot]

    @property
    def parts(self) -> list[ManagedPart]:
        # Platform services show (and stop) whenever they run, even for a plain `stack` command.
        wanted = self.platform_parts if self.platform else []
        running = [p for p in self.stoppable_platform_parts if p in wanted or p.running() is not None]
        return [*self.servers, *running]

    def part(self, name: str) -> ManagedPart:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"unknown part {name!r}; parts: {', '.join(p.name for p in self.parts)}")

    @contextmanager
    def _lock(self) -> Iterator[None]:
        # Two `up`s at once would race for the same ports and data dirs.
        run = self.settings.state_dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        with (run / "stack.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def check_tools(self) -> None:
        for finder in (find_java, find_ffmpeg):
            try:
                finder(self.settings)
            except ToolError as exc:
                raise StackError(exc.tool, exc.cause, None, exc.fix) from exc

    def preflight(self) -> None:
        """Fail before starting anything: external servers unreachable, or local ports taken."""
        for part in self.parts:
            if part.external:
                if (reason := part.check()) is not None:
                    raise StackError(
                        part.name,
                        f"external server {part.address} is unreachable ({reason})",
                        None,
                        part.external_fix(),
                    )
            elif part.running() is None:
                part.check_ports()

    def up(self, progress: Progress = _quiet) -> UpResult:
        begin = time.monotonic()
        result = UpResult([], [], [], 0.0)
        with self._lock():
            self.check_tools()
            self.preflight()
            try:
                # S3 first: the broker keeps its log there. The rest start side by side.
                self._bring_up(self.s3, result, progress)
                with ThreadPoolExecutor(max_workers=3) as pool:
                    futures = [
                        pool.submit(self._bring_up, part, result, progress)
                        for part in (self.kafka, self.postgres, self.clickhouse)
                    ]
                    errors = [f.exception() for f in futures]
                for error in errors:
                    if error is not None:
                        raise error
                if self.platform:
                    # The UI first: the daemon's health is read through it.
                    for part in self.platform_parts:
                        self._bring_up(part, result, progress)
            except BaseException:
                # Leave nothing half-started behind: stop what this call started, newest first.
                for name in reversed(result.started):
                    self.part(name).stop()
                raise
        result.seconds = time.monotonic() - begin
        return result

    def _bring_up(self, part: ManagedPart, result: UpResult, progress: Progress) -> None:
        timeout = self.settings.stack.start_timeout_s
        if part.external:
            result.external.append(part.name)
            progress(f"{part.name}: using external {part.address}")
            return
        if part.running() is not None:
            part.wait_healthy(timeout)
            part.after_start()
            result.already_running.append(part.name)
            progress(f"{part.name}: already running")
            return
        progress(f"{part.name}: starting")
        part.spawn()
        result.started.append(part.name)
        part.wait_healthy(timeout)
        part.after_start()
        progress(f"{part.name}: healthy at {part.address}")

    def down(self, progress: Progress = _quiet) -> list[str]:
        stopped: list[str] = []
        with self._lock():
            for part in reversed(self.stoppable_platform_parts):  # clients of the servers go first
                if part.stop():
                    stopped.append(part.name)
                    progress(f"{part.name}: stopped")
            # The broker first: it flushes its log to S3 on the way down.
            if self.kafka.stop():
                stopped.append(self.kafka.name)
                progress("kafka: stopped")
            rest = [self.postgres, self.clickhouse, self.s3]
            with ThreadPoolExecutor(max_workers=3) as pool:
                for part, was_running in zip(rest, pool.map(lambda p: p.stop(), rest), strict=True):
                    if was_running:
                        stopped.append(part.name)
                        progress(f"{part.name}: stopped")
        return stopped

    def status(self) -> list[PartStatus]:
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(lambda p: p.status(), self.parts))
        for name, finder in (("java", find_java), ("ffmpeg", find_ffmpeg)):
            try:
                tool = finder(self.settings)
                version = f"Java {tool.version}, " if hasattr(tool, "version") else ""
                statuses.append(PartStatus(name, "available", str(tool.executable), detail=f"{version}{tool.source}"))
            except ToolError as exc:
                statuses.append(PartStatus(name, "missing", "", detail=exc.cause))
        return statuses

    def log_files(self) -> dict[str, Path]:
        return {part.name: part.log_file for part in [*self.servers, *self.platform_parts]}
