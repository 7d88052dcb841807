"""Health endpoints, Prometheus metrics and trace propagation, on real servers and real HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from control.stack.isolated import free_port_block
from speech_coach.observability import (
    HealthServer,
    context_from_headers,
    context_from_traceparent,
    current_traceparent,
    kafka_headers,
    setup_tracing,
    tracer,
)
from speech_coach.observability.tracing import shutdown_tracing
from speech_coach.settings import Settings
from tests.conftest import make_settings
from tests.observability_assets import DASHBOARDS, RULE_FILES, defined, expressions, referenced
from tests.otlp_collector import OtlpCollector
from tests.test_contracts import samples
from tests.test_warehouse import produce, wh_settings  # noqa: F401 - the fixture is used by name


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    _, body = get(f"{url}/metrics")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def test_health_server_reports_liveness_readiness_and_metrics() -> None:
    registry = CollectorRegistry()
    answers = Counter("demo_answers_total", "answers", registry=registry)
    broken = {"reason": "connection refused"}
    health = HealthServer(
        "127.0.0.1",
        free_port_block(1),
        ready_checks={"db": lambda: None, "kafka": lambda: broken["reason"], "slow": lambda: time.sleep(5)},
        stall_after_s=0.5,
        registry=registry,
        check_timeout_s=0.5,
    )
    with health:
        code, body = get(f"{health.address}/readyz")
        assert code == 503
        checks = json.loads(body)["checks"]
        assert checks == {"db": "ok", "kafka": "connection refused", "slow": "no answer within 0.5 s"}
        health.ready_checks = {"db": lambda: None, "kafka": lambda: None}
        assert get(f"{health.address}/readyz")[0] == 200

        health.beat()
        assert get(f"{health.address}/healthz")[0] == 200
        time.sleep(0.7)  # no beat: the main loop is stuck
        code, body = get(f"{health.address}/healthz")
        assert code == 503 and json.loads(body)["status"] == "stalled"

        answers.inc(3)
        assert scrape(health.address)[("demo_answers_total", ())] == 3
        assert get(f"{health.address}/nope")[0] == 404


def send(url: str, method: str, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_health_server_serves_what_a_flink_reporter_pushes() -> None:
    """Flink's push-gateway reporter PUTs its whole text exposition; /metrics serves the latest next to its own."""
    registry = CollectorRegistry()
    Counter("driver_polls_total", "polls", registry=registry).inc()
    pushed = (
        "# HELP flink_jobmanager_numRunningJobs numRunningJobs\n# TYPE flink_jobmanager_numRunningJobs gauge\n"
        'flink_jobmanager_numRunningJobs{host="h"} {n}\n'
    )
    with HealthServer("127.0.0.1", free_port_block(1), registry=registry, accept_pushes=True) as health:
        url = f"{health.address}/metrics/job/speech-coach-answers"
        for n in (2, 1):  # a second push replaces the first
            assert send(url, "PUT", pushed.replace("{n}", str(n)).encode()) == 202
        metrics = scrape(health.address)
        assert metrics[("flink_jobmanager_numRunningJobs", (("host", "h"),))] == 1
        assert metrics[("driver_polls_total", ())] == 1
        assert send(url, "DELETE") == 202
        assert ("flink_jobmanager_numRunningJobs", (("host", "h"),)) not in scrape(health.address)
    # A server that does not accept pushes refuses them.
    with HealthServer("127.0.0.1", free_port_block(1), registry=CollectorRegistry()) as plain:
        assert send(f"{plain.address}/metrics/job/x", "PUT", b"x 1\n") == 404


@pytest.mark.stack
def test_ingestion_service_exposes_progress_lag_and_dead_letters(wh_settings: Settings) -> None:  # noqa: F811
    from warehouse.service import serve

    port = free_port_block(1)
    settings = wh_settings.model_copy(
        update={"warehouse": wh_settings.warehouse.model_copy(update={"ingest_health_port": port})}
    )
    events = samples()[:-2]
    feedback_topic = next(e for e in events if e.EVENT_TYPE == "feedback_result").TOPIC
    from speech_coach.kafka import topic_name

    produce(settings, events, [(topic_name(settings, feedback_topic), b"{broken")])
    stop = threading.Event()
    worker = threading.Thread(target=serve, args=(settings, stop), daemon=True)
    worker.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        ingested = 0.0
        feedback = topic_name(settings, feedback_topic)
        while time.monotonic() < deadline:
            try:
                metrics = scrape(url)
            except OSError:
                time.sleep(0.5)
                continue
            ingested = sum(v for (n, labels), v in metrics.items() if n == "speech_coach_ingest_records_total"
                           and dict(labels)["topic"].startswith(settings.kafka.topic_prefix))  # fmt: skip
            if ingested >= len(events) + 1:
                break
            time.sleep(0.5)
        assert ingested == len(events) + 1
        assert metrics[("speech_coach_ingest_dead_letters_total", (("topic", feedback),))] >= 1
        assert metrics[("speech_coach_ingest_rows_total", (("table", "raw_feedback"),))] >= 1
        assert get(f"{url}/readyz")[0] == 200
        assert get(f"{url}/healthz")[0] == 200
    finally:
        stop.set()
        worker.join(30)
    assert not worker.is_alive(), "SIGTERM-style stop must end the ingestion loop"


def test_trace_context_crosses_kafka_headers_and_event_fields(tmp_path: Path) -> None:
    collector = OtlpCollector().start()
    settings = make_settings(tmp_path, telemetry={"otlp_endpoint": collector.url, "sample_ratio": 1.0})
    try:
        assert setup_tracing(settings, "speech-coach-test")
        with tracer("bot").start_as_current_span("bot.publish") as publish:
            headers = kafka_headers()
            field = current_traceparent()
        trace_id = format(publish.get_span_context().trace_id, "032x")
        assert field is not None and field.split("-")[1] == trace_id
        # The consumer side: one context from the headers, one from the event field; both continue the trace.
        with tracer("job").start_as_current_span("job.transcribe", context=context_from_headers(headers)) as a:
            pass
        with tracer("bot").start_as_current_span("bot.deliver", context=context_from_traceparent(field)) as b:
            pass
        assert {format(s.get_span_context().trace_id, "032x") for s in (a, b)} == {trace_id}
        shutdown_tracing()
        names = {(s.name, s.trace_id) for s in collector.received()}
        assert {("bot.publish", trace_id), ("job.transcribe", trace_id), ("bot.deliver", trace_id)} <= names
    finally:
        collector.stop()


def test_tracing_is_a_no_op_without_an_endpoint(tmp_path: Path) -> None:
    assert not setup_tracing(make_settings(tmp_path), "speech-coach-test")
    # An incoming context is still passed on, so a traced upstream is not cut off by an untraced hop.
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert current_traceparent(context_from_traceparent(parent)) == parent
    assert context_from_headers(None) is not None


@pytest.mark.stack
def test_pipeline_health_reads_lag_last_feedback_and_dead_letters(wh_settings: Settings) -> None:  # noqa: F811
    from control.pipeline import pipeline_health, platform_consumers
    from speech_coach.contracts import Topic
    from speech_coach.kafka import ensure_topics, topic_name

    ensure_topics(wh_settings)
    empty = pipeline_health(wh_settings, platform_consumers(wh_settings))
    assert empty.error is None and empty.last_feedback_at is None and empty.dead_letters == 0
    events = samples()
    before = time.time()
    produce(wh_settings, events, [(topic_name(wh_settings, Topic.DEAD_LETTERS), b"kept")])
    health = pipeline_health(wh_settings, platform_consumers(wh_settings))
    assert health.error is None
    # Tansu reports a partition's end as its last batch's base offset + 1, so where two records share a batch
    # it reports one fewer (seen in CI: 7 of 8 records, 1 of 2 dead letters); Kafka reports them exactly.
    # The counts are therefore checked against both: never above the truth, at most one batch short.
    records = len(events) + 1  # nothing ingested yet: every record is lag
    assert set(health.lag) == {"warehouse ingestion"}
    assert records - 1 <= health.lag["warehouse ingestion"] <= records
    assert 1 <= health.dead_letters <= 2  # the sample dead letter and the raw one
    assert health.last_feedback_at is not None and health.last_feedback_at.timestamp() >= before - 1


def test_dashboards_and_alert_rules_parse_and_use_only_defined_metrics() -> None:
    assert {p.stem for p in DASHBOARDS} == {"learning-activity", "pipeline-health", "warehouse-freshness"}
    for where, expr in expressions():
        try:
            promql_parser.parse(expr)
        except Exception as exc:  # the parser raises plain ValueErrors naming the position
            raise AssertionError(f"{where}: {expr!r} does not parse: {exc}") from exc
    unknown = referenced() - defined()
    assert not unknown, f"metrics no service exports: {sorted(unknown)}"
    # Every alert the issue asks for is there, with a severity and a summary.
    rules = [r for path in RULE_FILES for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]
    alerts = {r["alert"] for r in rules}
    for alert in ("PipelineStalled", "DeadLettersRising", "IngestionLag", "FeedbackLatencyHigh"):
        assert f"SpeechCoach{alert}" in alerts
    assert all(r["labels"]["severity"] in {"warning", "critical"} and r["annotations"]["summary"] for r in rules)
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"].startswith("speech-coach-") and board["panels"]
        assert all(p["datasource"]["uid"] == "${datasource}" for p in board["panels"])
