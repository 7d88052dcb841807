"""Prometheus metrics of the bot, in a registry of its own (several bots can live in one test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.updates = Counter("bot_updates_total", "Telegram updates handled", ["kind"], registry=r)
        self.duplicate_updates = Counter("bot_duplicate_updates_total", "Redelivered updates skipped", registry=r)
        self.answers = Counter("bot_answers_total", "Voice answers by outcome", ["outcome"], registry=r)
        self.refusals = Counter("bot_refusals_total", "Refused messages by reason", ["reason"], registry=r)
        self.publish_attempts = Counter("bot_publish_attempts_total", "Kafka publish tries", ["result"], registry=r)
        self.feedback = Counter("bot_feedback_total", "Feedback events by outcome", ["outcome"], registry=r)
        self.payments = Counter("bot_payments_total", "Successful Stars payments", registry=r)
        self.forged_webhooks = Counter("bot_forged_webhook_requests_total", "Webhook calls refused", registry=r)
        self.in_flight = Gauge("bot_answers_in_flight", "Answers being stored and published", registry=r)
        self.publish_seconds = Histogram("bot_publish_seconds", "Store and publish time per answer", registry=r)
        # From the voice message's arrival to the feedback sent: what the learner waits (alert: p95 over target).
        self.feedback_latency = Histogram(
            "bot_feedback_latency_seconds", "Answer received to feedback delivered", registry=r,
            buckets=(1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 120, 300, 600),
        )  # fmt: skip
        self.last_feedback = Gauge(
            "bot_last_feedback_delivered_timestamp_seconds", "When feedback was last sent to a learner", registry=r
        )
