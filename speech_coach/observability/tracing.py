"""OpenTelemetry tracing: one trace follows an answer from the bot through Kafka and each Flink stage to delivery.

The trace context travels twice: in W3C `traceparent` Kafka headers (what Kafka-aware tooling reads) and in the
events' own `traceparent` field, which survives hops that drop headers (the Flink Kafka source hands the job
values only). Spans are exported over OTLP/HTTP when `SC_TELEMETRY__OTLP_ENDPOINT` is set; otherwise the tracer is
OpenTelemetry's no-op one and costs next to nothing, while contexts that arrive are still passed on.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from speech_coach.logging import SecretRedactor
from speech_coach.settings import Settings

KafkaHeaders = Sequence[tuple[str, bytes | str | None]]

_PROPAGATOR = TraceContextTextMapPropagator()
_LOCK = threading.Lock()
_CONFIGURED: str | None = None


class _HeaderGetter(Getter[KafkaHeaders]):
    def get(self, carrier: KafkaHeaders, key: str) -> list[str] | None:
        values = [
            v.decode("utf-8", "replace") if isinstance(v, bytes) else v
            for k, v in carrier or ()
            if k.lower() == key.lower() and v is not None
        ]
        return values or None

    def keys(self, carrier: KafkaHeaders) -> list[str]:
        return [k for k, _ in carrier or ()]


class _DictSetter(Setter[dict[str, str]]):
    def set(self, carrier: dict[str, str], key: str, value: str) -> None:
        carrier[key] = value


def setup_tracing(settings: Settings, service: str) -> bool:
    """Install the SDK tracer provider for this process when an OTLP endpoint is configured; idempotent.

    Returns whether spans are exported.
    """
    global _CONFIGURED
    endpoint = settings.telemetry.otlp_endpoint.rstrip("/")
    if not endpoint:
        return False
    with _LOCK:
        if _CONFIGURED is not None:
            return True
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        resource = Resource.create(
            {
                "service.name": service,
                "service.namespace": "speech-coach",
                "deployment.environment": settings.environment,
            }
        )
        provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.telemetry.sample_ratio))
        )
        exporter = RedactingExporter(
            OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=settings.telemetry.export_timeout_s),
            SecretRedactor(settings.secret_values()),
        )
        # Short delay: a trace should show up while someone is still looking at the answer it belongs to.
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
        trace.set_tracer_provider(provider)
        _CONFIGURED = service
        return True


class RedactingExporter(SpanExporter):
    """Exports copies of the spans with every configured secret replaced in names, attributes, events and status.

    Recorded exceptions carry their messages and tracebacks as event attributes; an aiohttp error during a
    Telegram file download, for one, names the URL `/file/bot<token>/...`."""

    def __init__(self, inner: SpanExporter, redactor: SecretRedactor) -> None:
        self.inner, self.redactor = inner, redactor

    def _copy(self, span: ReadableSpan) -> ReadableSpan:
        scrub = self.redactor.scrub
        return ReadableSpan(
            name=scrub(span.name), context=span.context, parent=span.parent, resource=span.resource,
            attributes=scrub(dict(span.attributes or {})),
            events=[Event(scrub(e.name), scrub(dict(e.attributes or {})), e.timestamp) for e in span.events],
            links=span.links, kind=span.kind, status=Status(span.status.status_code, scrub(span.status.description)),
            start_time=span.start_time, end_time=span.end_time, instrumentation_scope=span.instrumentation_scope,
        )  # fmt: skip

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self._copy(s) for s in spans] if self.redactor else spans)

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def shutdown_tracing() -> None:
    """Flush spans still buffered (call on graceful shutdown)."""
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()


def tracer(name: str) -> Tracer:
    return trace.get_tracer(name)


def kafka_headers(ctx: Context | None = None) -> list[tuple[str, bytes]]:
    """The current (or given) trace context as Kafka message headers."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx, setter=_DictSetter())
    return [(k, v.encode()) for k, v in carrier.items()]


def context_from_headers(headers: KafkaHeaders | None) -> Context:
    return _PROPAGATOR.extract(list(headers or ()), getter=_HeaderGetter())


def current_traceparent(ctx: Context | None = None) -> str | None:
    """W3C traceparent of the current (or given) span, for the events' `traceparent` field."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx, setter=_DictSetter())
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None, base: Context | None = None) -> Context:
    if not traceparent:
        return base if base is not None else otel_context.get_current()
    return _PROPAGATOR.extract({"traceparent": traceparent}, context=base)
