"""The local stack as a whole: start side by side in dependency order, health-check, stop only what it started."""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from control.stack.base import ManagedPart, PartStatus, StackError, StartAborted
from control.stack.bot import BotPart
from control.stack.broker import BrokerPart
from control.stack.clickhouse import ClickHousePart
from control.stack.dagster import DagsterCodeServerPart, DagsterDaemonPart, DagsterWebserverPart
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
    part_seconds: dict[str, float] = field(default_factory=dict)  # from its start (or its wait) to healthy


@dataclass
class PartProgress:
    """One part during `up`, for a live view: what it does now, since when, and what it waits for."""

    name: str
    state: str = "waiting"  # waiting | starting | healthy | running | external | failed | cancelled
    since: float = field(default_factory=time.monotonic)
    detail: str = ""
    seconds: float | None = None  # how long it took, once done

    @property
    def done(self) -> bool:
        return self.state in {"healthy", "running", "external", "failed", "cancelled"}


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
        self.dagster_code = DagsterCodeServerPart(settings)
        self.dagster_ui = DagsterWebserverPart(settings)
        self.dagster_daemon = DagsterDaemonPart(settings)
        self.ingest = ingest_part(settings)
        self.bot = BotPart(settings)
        self.metrics_job = metrics_job_part(settings)
        self.answer_job = answer_job_part(settings)
        self.platform = platform
        # The parts of the current (or last) `up`, updated while it runs: `control.stack.view` shows them live.
        self.board: dict[str, PartProgress] = {}

    @property
    def servers(self) -> list[ManagedPart]:
        return [self.s3, self.kafka, self.postgres, self.clickhouse]

    @property
    def platform_parts(self) -> list[ManagedPart]:
        parts: list[ManagedPart] = [self.ingest]
        if self.settings.dagster.enabled:
            parts += [self.dagster_code, self.dagster_ui, self.dagster_daemon]
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
        return [self.ingest, self.dagster_code, self.dagster_ui, self.dagster_daemon, self.answer_job,
                self.metrics_job, self.bot]  # fmt: skip

    @classmethod
    def part_names(cls) -> list[str]:
        """The name of every part, read from the parts themselves without any settings (for help texts)."""
        return [part.name for part in cls(Settings.model_construct()).all_parts]

    @property
    def all_parts(self) -> list[ManagedPart]:
        """Every part this stack can run, whether or not it runs or is enabled now (`stack logs` offers each)."""
        return [*self.servers, *self.stoppable_platform_parts]

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

    def starts_after(self, part: ManagedPart) -> list[ManagedPart]:
        """The parts that must be healthy before `part` starts. Everything else starts side by side."""
        if part is self.kafka:
            return [self.s3]  # the broker keeps its log in S3
        if part in self.servers:
            return []
        storage = [self.postgres] if self.settings.dagster.postgres_url else []  # Dagster's run storage
        if part in (self.dagster_code, self.dagster_ui):
            # Loading the definitions (and a `dbt parse` if the models changed) needs no server. The UI takes
            # about as long to import and then connects to the code server (Dagster reconnects to one that comes
            # up late), so both start at once; the UI counts as healthy only once it shows the code location.
            return storage
        if part is self.dagster_daemon:
            return [*storage, *self.servers]  # its sensors read Kafka from their first tick
        return self.servers  # the platform's services are clients of the servers

    def checked_after(self, part: ManagedPart) -> list[ManagedPart]:
        """The parts that must be healthy before `part`'s health can be read (after it started)."""
        if part is self.dagster_ui:
            return [self.dagster_code]  # it shows the code location once that has loaded; its timeout starts then
        return [self.dagster_ui] if part is self.dagster_daemon else []  # the UI reports the daemon's heartbeats

    def up(self, progress: Progress = _quiet) -> UpResult:
        begin = time.monotonic()
        result = UpResult([], [], [], 0.0)
        parts = [*self.servers, *(self.platform_parts if self.platform else [])]
        self.board = {part.name: PartProgress(part.name) for part in parts}
        with self._lock():
            self.check_tools()
            self.preflight()
            try:
                self._start_all(parts, result, progress)
            except BaseException:
                # Leave nothing half-started behind: stop what this call started, clients first.
                for part in reversed(parts):
                    if part.name in result.started:
                        part.stop()
                raise
        order = [p.name for p in parts]
        for names in (result.started, result.already_running, result.external):
            names.sort(key=order.index)
        result.seconds = time.monotonic() - begin
        return result

    def _start_all(self, parts: list[ManagedPart], result: UpResult, progress: Progress) -> None:
        """Each part in its own thread, as soon as what it needs is healthy; the first failure cancels the rest."""
        ready = {part.name: threading.Event() for part in parts}
        failed = threading.Event()
        errors: list[BaseException] = []
        lock = threading.Lock()

        def wait_for(needed: list[ManagedPart]) -> None:
            for dep in needed:
                if dep.name not in ready:
                    continue  # not part of this start (e.g. Dagster off)
                while not ready[dep.name].wait(0.1):
                    if failed.is_set():
                        raise StartAborted(dep.name)

        def bring_up(part: ManagedPart) -> None:
            board = self.board[part.name]
            try:
                needed = self.starts_after(part)
                if pending := [d.name for d in needed if d.name in ready and not ready[d.name].is_set()]:
                    board.detail = f"for {', '.join(pending)}"
                wait_for(needed)

                def before_check() -> None:
                    through = self.checked_after(part)
                    if pending := [d.name for d in through if d.name in ready and not ready[d.name].is_set()]:
                        board.detail = f"its health is read through {', '.join(pending)}"
                    wait_for(through)

                self._bring_up(part, result, progress, lock, before_check, failed)
                ready[part.name].set()
            except StartAborted:
                board.state, board.detail = "cancelled", "another part failed"
            except BaseException as exc:
                board.state, board.detail = "failed", str(getattr(exc, "cause", exc))
                with lock:
                    errors.append(exc)
                failed.set()

        pool = ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="stack-up")
        try:
            for future in [pool.submit(bring_up, part) for part in parts]:
                future.result()
        except BaseException:
            failed.set()  # Ctrl-C: the waiting threads give up within a poll, then `up` stops what started
            raise
        finally:
            pool.shutdown(wait=True)
        if errors:
            raise errors[0]

    def _bring_up(
        self,
        part: ManagedPart,
        result: UpResult,
        progress: Progress,
        lock: threading.Lock,
        before_check: Callable[[], None],
        abort: threading.Event,
    ) -> None:
        timeout = self.settings.stack.start_timeout_s
        board = self.board[part.name]
        began = time.monotonic()

        def moved(state: str, detail: str = "") -> None:
            board.state, board.detail, board.since = state, detail, time.monotonic()

        def waiting(reason: str) -> None:
            board.detail = reason

        if part.external:
            with lock:
                result.external.append(part.name)
            moved("external", part.address)
            board.seconds = 0.0
            progress(f"{part.name}: using external {part.address}")
            return
        if part.running() is not None:
            before_check()
            part.wait_healthy(timeout, abort=abort, waiting=waiting)
            part.after_start()
            with lock:
                result.already_running.append(part.name)
            moved("running", "already running")
            board.seconds = time.monotonic() - began
            progress(f"{part.name}: already running")
            return
        moved("starting")
        progress(f"{part.name}: starting")
        part.spawn()
        with lock:
            result.started.append(part.name)
        before_check()
        part.wait_healthy(timeout, abort=abort, waiting=waiting)
        part.after_start()
        board.seconds = result.part_seconds[part.name] = time.monotonic() - began
        moved("healthy", part.address)
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
        return {part.name: part.log_file for part in self.all_parts}
