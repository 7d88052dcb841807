"""`/healthz`, `/readyz` and `/metrics` on one small threaded HTTP server.

A plain WSGI server on a thread, not an event loop, so the same code serves the asyncio bot, the blocking
ingestion loop and a Flink driver process. Liveness says the process still makes progress; readiness says its
dependencies answer, so an orchestrator can stop sending work without restarting the process.

A Flink job process also accepts Prometheus push-gateway pushes (`PUT /metrics/job/<name>`) from the local
MiniCluster's own Prometheus reporter and serves them with its own metrics: Flink's pull reporter can only bind
every interface, a push to loopback keeps the local stack on loopback.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

# A readiness check returns None when the dependency answers, else the reason it does not.
ReadyCheck = Callable[[], str | None]

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes every few seconds would drown the service's structured logs


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        ready_checks: Mapping[str, ReadyCheck] | None = None,
        stall_after_s: float | None = None,
        registry: CollectorRegistry = REGISTRY,
        check_timeout_s: float = 3.0,
        accept_pushes: bool = False,
    ) -> None:
        self.host, self.port = host, port
        self.ready_checks = dict(ready_checks or {})
        self.stall_after_s = stall_after_s
        self.check_timeout_s = check_timeout_s
        self._beat = time.monotonic()
        self.registry = registry
        self.accept_pushes = accept_pushes
        self._pushed: dict[str, bytes] = {}  # push path -> the latest metrics pushed there
        self._push_lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")

    def beat(self) -> None:
        """Called by the service's main loop: liveness fails once beats stop for `stall_after_s`."""
        self._beat = time.monotonic()

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.bound_port}"

    @property
    def bound_port(self) -> int:
        return self._server.server_port if self._server else self.port

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        idle = time.monotonic() - self._beat
        alive = self.stall_after_s is None or idle <= self.stall_after_s
        return alive, {"status": "ok" if alive else "stalled", "seconds_since_progress": round(idle, 1)}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        futures = {name: self._pool.submit(check) for name, check in self.ready_checks.items()}
        results: dict[str, str] = {}
        for name, future in futures.items():
            try:
                reason = future.result(timeout=self.check_timeout_s)
            except FutureTimeout:
                reason = f"no answer within {self.check_timeout_s:g} s"
            except Exception as exc:  # a failing check means "not ready", never a crashed probe
                reason = f"{type(exc).__name__}: {exc}"
            results[name] = "ok" if reason is None else reason
        ready = all(v == "ok" for v in results.values())
        return ready, {"status": "ready" if ready else "not ready", "checks": results}

    def metrics_text(self) -> bytes:
        """The registry's metrics followed by the latest push of each pusher (text format 0.0.4)."""
        with self._push_lock:
            pushed = list(self._pushed.values())
        return generate_latest(self.registry) + b"".join(p if p.endswith(b"\n") else p + b"\n" for p in pushed)

    def _push(self, environ: dict[str, Any], start_response: StartResponse, path: str) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method in ("PUT", "POST"):
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            with self._push_lock:
                # A PUT replaces what that pusher sent before; Flink's reporter always sends everything.
                self._pushed[path] = body if method == "PUT" else self._pushed.get(path, b"") + body
        elif method == "DELETE":
            with self._push_lock:
                self._pushed.pop(path, None)
        else:
            start_response("405 Method Not Allowed", [("Content-Type", "text/plain")])
            return [b"push with PUT, POST or DELETE\n"]
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        return [b""]

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
            return [self.metrics_text()]
        if self.accept_pushes and path.startswith("/metrics/job/"):
            return self._push(environ, start_response, path)
        if path in ("/healthz", "/readyz"):
            ok, payload = self.liveness() if path == "/healthz" else self.readiness()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json")])
            return [json.dumps(payload).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found: use /healthz, /readyz or /metrics\n"]

    def start(self) -> HealthServer:
        self._server = make_server(
            self.host, self.port, self._app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="health", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
