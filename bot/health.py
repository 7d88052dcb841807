"""`/healthz` (the bot's loops come round), `/readyz` (they make progress, PostgreSQL and Kafka reachable) and
`/metrics` (Prometheus).

Each long-running loop (the feedback consumer, the Telegram update loop) beats a `Heartbeat` every time round,
whether that round succeeded or not. Liveness fails only when a loop stopped coming round (hung, or its task
died): a restart helps then, and not during a database or Telegram outage, which would only turn into a crash
loop. Readiness fails while a loop's last round failed, so the outage is visible and a webhook replica that
cannot handle updates leaves the Service.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.services import Services


@dataclass
class Heartbeat:
    name: str
    stale_after_s: float
    beat_at: float = field(default_factory=time.monotonic)
    error: str | None = "starting"  # what the last round failed with; None when it succeeded
    stopped: str | None = None  # set when the loop ended for good

    def beat(self, error: str | None = None) -> None:
        self.beat_at, self.error = time.monotonic(), error

    def alive(self) -> str | None:
        """None while the loop comes round; otherwise why not."""
        if self.stopped is not None:
            return f"stopped: {self.stopped}"
        if (age := time.monotonic() - self.beat_at) > self.stale_after_s:
            return f"no progress for {age:.0f} s"
        return None

    def progressing(self) -> str | None:
        """None when the last round succeeded; otherwise why not."""
        return self.alive() or (f"failing: {self.error}" if self.error else None)


def health_app(services: Services, heartbeats: list[Heartbeat]) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        checks = {h.name: h.alive() or "ok" for h in heartbeats}
        alive = all(v == "ok" for v in checks.values())
        return web.json_response({"status": "ok" if alive else "stuck", "checks": checks}, status=200 if alive else 503)

    async def readyz(_request: web.Request) -> web.Response:
        db, kafka = await asyncio.gather(services.db.ping(), asyncio.to_thread(services.publisher.ping))
        checks = {"postgres": db or "ok", "kafka": kafka or "ok"}
        checks |= {h.name: h.progressing() or "ok" for h in heartbeats}
        ready = all(v == "ok" for v in checks.values())
        return web.Response(
            status=200 if ready else 503, text=json.dumps({"ready": ready, "checks": checks}),
            content_type="application/json",
        )  # fmt: skip

    async def metrics(_request: web.Request) -> web.Response:
        body = generate_latest(services.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app
