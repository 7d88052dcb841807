"""Health endpoints, Prometheus metrics and OpenTelemetry tracing shared by every long-running service."""

from speech_coach.observability.health import HealthServer, ReadyCheck
from speech_coach.observability.tracing import (
    context_from_headers,
    context_from_traceparent,
    current_traceparent,
    kafka_headers,
    setup_tracing,
    tracer,
)

__all__ = [
    "HealthServer",
    "ReadyCheck",
    "context_from_headers",
    "context_from_traceparent",
    "current_traceparent",
    "kafka_headers",
    "setup_tracing",
    "tracer",
]
