"""A local OTLP/HTTP trace collector for tests: decodes the protobuf export requests the real exporters send."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, str]
    # (name, attributes) of each event: recorded exceptions carry their message and traceback here.
    events: tuple[tuple[str, dict[str, str]], ...] = ()
    status_message: str = ""


class OtlpCollector:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.bodies: list[bytes] = []  # every export request as sent, to search for what must never be in it
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                received = []
                for resource_spans in request.resource_spans:
                    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope in resource_spans.scope_spans:
                        for span in scope.spans:
                            attrs = {a.key: a.value.string_value for a in span.attributes}
                            events = tuple(
                                (e.name, {a.key: a.value.string_value for a in e.attributes}) for e in span.events
                            )
                            received.append(
                                ReceivedSpan(resource["service.name"], span.name, span.trace_id.hex(),
                                             span.span_id.hex(), span.parent_span_id.hex(), attrs, events,
                                             span.status.message)
                            )  # fmt: skip
                with collector.lock:
                    collector.spans.extend(received)
                    collector.bodies.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> OtlpCollector:
        threading.Thread(target=self.server.serve_forever, name="otlp-collector", daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)

    def wait_for(self, names: set[str], trace_id: str | None = None, timeout: float = 30) -> list[ReceivedSpan]:
        """Spans of one trace (the given one, else any) once every name in `names` arrived in it."""
        deadline = time.monotonic() + timeout
        while True:
            by_trace: dict[str, list[ReceivedSpan]] = {}
            for span in self.received():
                by_trace.setdefault(span.trace_id, []).append(span)
            for tid, spans in by_trace.items():
                if (trace_id is None or tid == trace_id) and names <= {s.name for s in spans}:
                    return spans
            if time.monotonic() > deadline:
                seen = sorted({(s.service, s.name) for s in self.received()})
                raise AssertionError(f"no trace with {sorted(names)} within {timeout} s; spans seen: {seen}")
            time.sleep(0.2)
