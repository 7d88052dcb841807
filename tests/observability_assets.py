"""The Grafana dashboards and Prometheus alert rules in the chart, the metric names the code defines, and scraping
a service's /metrics."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from prometheus_client.parser import text_string_to_metric_families

CHART = Path(__file__).resolve().parents[1] / "deploy" / "helm" / "speech-coach"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
RULE_FILES = sorted((CHART / "alerts").glob("*.yaml"))

# Flink's own metrics the dashboards and rules use (scope formats of Flink 2.x); the answer-job test finds every
# one of them in a real scrape of the job process.
FLINK_BUILTIN = {
    "flink_jobmanager_numRunningJobs",
    "flink_jobmanager_job_numRestarts",
}


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every alert rule and every dashboard target."""
    out: list[tuple[str, str]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out += [(f"{path.name}:{r['alert']}", r["expr"]) for r in group["rules"]]
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            out += [(f"{path.name}:{panel['title']}", t["expr"]) for t in panel["targets"]]
    return out


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name or next((m.value for m in node.matchers.matchers if m.name == "__name__"), None)
            if name:
                names.add(name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def referenced() -> set[str]:
    return {name for _, expr in expressions() for name in metric_names(expr)}


def _registry_names(registry: Any) -> set[str]:
    names: set[str] = set()
    for family in registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "summary": ["_count", "_sum"]}
        names |= {family.name + s for s in suffixes.get(family.type, [""])}
    return names


def defined() -> set[str]:
    """Every metric name the services export: bot, ingestion, the job processes and the jobs' Flink metrics."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics import MetricWrapperBase

    import warehouse.ingest as ingest
    from bot.metrics import Metrics
    from flink_jobs.answers.job import prometheus_names as answer_job_names
    from flink_jobs.common import driver_metrics
    from flink_jobs.metrics.job import prometheus_names as metrics_job_names

    ingestion = CollectorRegistry()
    for metric in vars(ingest).values():  # every module-level metric, so a new one needs no edit here
        if isinstance(metric, MetricWrapperBase):
            ingestion.register(metric)
    names = _registry_names(Metrics().registry) | _registry_names(ingestion) | _registry_names(driver_metrics()[0])
    return names | answer_job_names() | metrics_job_names() | FLINK_BUILTIN


def scrape(url: str) -> dict[str, float]:
    """A service's /metrics, samples summed over their labels (Flink reports one series per subtask and operator)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:  # noqa: S310 - loopback
        body = response.read().decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
