"""Ingestion as a long-running service: the Ingestor loop plus /healthz, /readyz, /metrics and lag gauges.

`make run` starts it (`speech-coach warehouse ingest --follow`); Kubernetes runs `python -m warehouse ingest
--follow`, the same command without the platform's CLI. SIGTERM ends the current batch (inserted and committed, or
neither) before the process exits.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from speech_coach.kafka import client_config
from speech_coach.logging import get_logger
from speech_coach.observability import HealthServer
from speech_coach.settings import Settings
from warehouse.client import connect
from warehouse.ingest import Ingestor, IngestStats
from warehouse.migrate import migrate

log = get_logger(__name__)

LAG_EVERY_S = 15.0
# A poll returns within the batch timeout; far longer without one means the loop is stuck.
STALL_FACTOR = 30


def _kafka_ready(settings: Settings) -> str | None:
    AdminClient(client_config(settings) | {"log_level": 3}).list_topics(timeout=2)
    return None


def serve(settings: Settings, stop: threading.Event | None = None) -> IngestStats:
    stop = stop or threading.Event()
    # The raw tables must exist before the first batch; migrations are idempotent.
    applied = migrate(connect(settings))
    if applied:
        log.info("warehouse.migrated", versions=[m.version for m in applied])
    with Ingestor(settings) as ingestor:
        health = HealthServer(
            settings.telemetry.bind_host,
            settings.warehouse.ingest_health_port,
            ready_checks={
                "clickhouse": lambda: (ingestor.client.execute("SELECT 1"), None)[1],
                "kafka": lambda: _kafka_ready(settings),
            },
            stall_after_s=max(60.0, settings.warehouse.ingest_batch_timeout_s * STALL_FACTOR),
        )

        def refresh_lag() -> None:
            while not stop.wait(LAG_EVERY_S):
                try:
                    ingestor.lag()
                except Exception as exc:  # a failed lag probe must not stop ingestion
                    log.warning("warehouse.lag_failed", error=str(exc))

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("warehouse.ingest_stopping", signal=signal.Signals(signum).name)
            stop.set()

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
        with health:
            log.info("warehouse.ingest_serving", health=health.address)
            threading.Thread(target=refresh_lag, name="lag", daemon=True).start()
            stats = ingestor.run(until_idle_s=None, stop=stop, on_poll=health.beat)
    log.info("warehouse.ingest_stopped", records=stats.messages, dead_letters=stats.dead_letters)
    return stats
