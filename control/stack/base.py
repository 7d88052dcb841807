"""Process supervision for the local stack: pid files, detached start, health waits, clean stop.

Every server runs detached in its own session so it outlives `speech-coach stack up`; its pid, process
start time and command live in `<state>/run/<part>.json`, so `down` stops exactly what `up` started and
never a process that merely reuses the pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from speech_coach.settings import Settings


def setting_value(settings: Settings, variable: str) -> object:
    """The value behind an `SC_<SECTION>__<FIELD>` variable name, as these settings resolved it."""
    section, _, field = variable.removeprefix("SC_").lower().partition("__")
    return getattr(getattr(settings, section), field)


class StackError(RuntimeError):
    """One line for the operator: the part, the cause, its log file and the fix."""

    def __init__(self, part: str, cause: str, log: Path | str | None, fix: str) -> None:
        self.part, self.cause, self.log, self.fix = part, cause, log, fix
        super().__init__(f"{part}: {cause} (log: {log or 'none'}) - fix: {fix}")


class StartAborted(RuntimeError):
    """A part's start was given up because another part failed; that part's error is the one to report."""


@dataclass
class PartStatus:
    name: str
    state: str  # healthy | stopped | unhealthy | external | unreachable | available | missing
    address: str
    pid: int | None = None
    data_dir: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state in {"healthy", "external", "available"}


@dataclass
class Running:
    pid: int
    create_time: float
    command: list[str] = field(default_factory=list)


def port_owner(host: str, port: int) -> str:
    """Best-effort description of whoever listens on host:port (psutil needs privileges for others)."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid:
                    with contextlib.suppress(psutil.Error):
                        proc = psutil.Process(conn.pid)
                        return f"pid {conn.pid} ({proc.name()})"
                return "another process"
    return "another process"


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers bind with SO_REUSEADDR, so lingering TIME_WAIT sockets must not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def tcp_reachable(host: str, port: int, timeout: float = 2.0) -> str | None:
    """None when a TCP connection succeeds, else the reason it did not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


class ManagedPart(ABC):
    """A server of the local stack, or the address of an external one that replaces it."""

    name: str
    stop_signal: signal.Signals = signal.SIGTERM
    # `SC_<SECTION>__<FIELD>` naming an external server that replaces this part when set.
    external_setting: str = ""
    # The settings that hold this part's own ports, in `ports()` order (named when one is taken).
    port_settings: tuple[str, ...] = ()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir
        self.host = settings.stack.host

    # --- what each part defines ---------------------------------------------------------------------

    @property
    def external(self) -> bool:
        return bool(self.external_setting and setting_value(self.settings, self.external_setting))

    @property
    @abstractmethod
    def address(self) -> str: ...

    def ports(self) -> list[int]:
        return [int(setting_value(self.settings, name)) for name in self.port_settings]

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def check(self) -> str | None:
        """None when the server answers a real request, else why not."""

    def failure(self) -> str | None:
        """Why the running process will never become healthy (its log says so), else None: stop waiting then."""
        return None

    def external_fix(self) -> str:
        return f"check {self.external_setting} and the server, or unset it to run {self.name} locally"

    def prepare(self) -> None:
        """One-off work before the first start (initdb, config files)."""

    def after_start(self) -> None:
        """Work once healthy (create databases and buckets); must be idempotent."""

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def setup_failed(self, what: str, exc: BaseException, fix: str = "read the log") -> StackError:
        """The error for `after_start` work that failed on a running server: what, why, its log, the fix."""
        return StackError(self.name, f"could not {what}: {describe_exc(exc)}", self.log_file, fix)

    def cwd(self) -> Path:
        return self.data_dir

    def run_as(self) -> str | None:
        return None

    # --- paths ----------------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.state_dir / self.name

    @property
    def data_location(self) -> str:
        """Where this part keeps its data, as shown by `stack status`."""
        return str(self.data_dir)

    @property
    def log_file(self) -> Path:
        return self.state_dir / "logs" / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "run" / f"{self.name}.json"

    # --- process bookkeeping ------------------------------------------------------------------------

    def running(self) -> Running | None:
        try:
            info = json.loads(self.pid_file.read_text())
            rec = Running(int(info["pid"]), float(info["create_time"]), list(info.get("command", [])))
        except (OSError, ValueError, KeyError):
            return None
        try:
            proc = psutil.Process(rec.pid)
            # Same pid but a different start time means the pid was reused by another program.
            if abs(proc.create_time() - rec.create_time) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return rec

    def _record(self, proc: subprocess.Popen[bytes]) -> None:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        create_time = psutil.Process(proc.pid).create_time()
        record = {"pid": proc.pid, "create_time": create_time, "command": [str(c) for c in proc.args]}  # type: ignore[union-attr]
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.pid_file)

    def check_ports(self) -> None:
        for port in self.ports():
            if not port_free(self.host, port):
                raise StackError(
                    self.name,
                    f"port {port} on {self.host} is already in use by {port_owner(self.host, port)}",
                    self.log_file,
                    f"stop that process or choose another port in settings ({self.port_setting_hint()})",
                )

    def spawn(self) -> None:
        self.check_ports()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.prepare()
        with self.log_file.open("ab") as log:
            log.write(f"\n--- starting {self.name} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')} ---\n".encode())
            log.flush()
            try:
                proc = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.cwd(),
                    env=self.env(),
                    start_new_session=True,  # survives the CLI, and its whole group can be stopped
                    user=self.run_as(),
                )
            except OSError as exc:
                raise StackError(
                    self.name,
                    f"could not execute {self.command()[0]}: {exc}",
                    self.log_file,
                    "reinstall: make install",
                ) from exc
        self._record(proc)
        self._proc = proc

    def port_setting_hint(self) -> str:
        return " / ".join(self.port_settings)

    def wait_healthy(
        self, timeout: float, *, abort: threading.Event | None = None, waiting: Callable[[str], None] | None = None
    ) -> None:
        """Until `check` passes; `waiting` hears each reason it did not yet, `abort` ends the wait early."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if abort is not None and abort.is_set():
                raise StartAborted(self.name)
            if self.running() is None:
                self._reap()
                raise StackError(
                    self.name,
                    f"the server exited during start-up ({self.last_log_line() or 'see its log'})",
                    self.log_file,
                    "read the log; a corrupt data dir can be moved aside (its data is then lost)",
                )
            if (failed := self.failure()) is not None:
                raise StackError(self.name, failed, self.log_file, "read the log, fix the cause and start again")
            reason = self.check()
            if reason is None:
                return
            if waiting is not None and reason != last:
                waiting(reason)
            last = reason
            time.sleep(0.25)
        raise StackError(
            self.name,
            f"not healthy after {timeout:.0f} s ({last})",
            self.log_file,
            "read the log, or raise SC_STACK__START_TIMEOUT_S on a slow machine",
        )

    def _reap(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1)

    def latest_log(self) -> str:
        """The log of the latest start only (the file keeps earlier starts), or "" if there is none yet."""
        try:
            log = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return log.rpartition(f"--- starting {self.name} at")[2]

    def last_log_line(self) -> str:
        try:
            lines = [ln.strip() for ln in self.log_file.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1][:200] if lines else ""

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the process group this stack started. Returns True if something was stopped."""
        rec = self.running()
        if rec is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        try:
            proc = psutil.Process(rec.pid)
            group = [proc, *proc.children(recursive=True)]
            os.kill(rec.pid, self.stop_signal)
        except (psutil.Error, ProcessLookupError):
            group = []
        _, alive = psutil.wait_procs(group, timeout=timeout)
        for leftover in alive:
            with contextlib.suppress(psutil.Error):
                leftover.kill()
        psutil.wait_procs(alive, timeout=5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(rec.pid, signal.SIGKILL)  # anything the server forked and left behind
        self._reap()
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> PartStatus:
        if self.external:
            reason = self.check()
            return PartStatus(
                self.name, "external" if reason is None else "unreachable", self.address, detail=reason or ""
            )
        rec = self.running()
        if rec is None:
            return PartStatus(self.name, "stopped", self.address, data_dir=self.data_location)
        reason = self.check()
        return PartStatus(
            self.name,
            "healthy" if reason is None else "unhealthy",
            self.address,
            pid=rec.pid,
            data_dir=self.data_location,
            detail=reason or "",
        )


def describe_exc(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__
