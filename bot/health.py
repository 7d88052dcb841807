"""`/healthz` (the process answers), `/readyz` (PostgreSQL and Kafka reachable) and `/metrics` (Prometheus)."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot.services import Services


def health_app(services: Services) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        db, kafka = await asyncio.gather(services.db.ping(), asyncio.to_thread(services.publisher.ping))
        checks = {"postgres": db or "ok", "kafka": kafka or "ok"}
        ready = db is None and kafka is None
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
