"""A local OpenAI-compatible server for tests: the real openai SDK talks to it through `base_url`.

It implements what the answer pipeline uses: `POST /v1/audio/transcriptions` (multipart, `verbose_json` with
words and segments, the temperature recorded) and `POST /v1/chat/completions` with `response_format`
json_schema (it returns JSON generated from, and validated against, the schema the client sent, and refuses
schemas that strict mode would refuse). Each endpoint answers from a queue of planned behaviours, then its
default: "ok", "500", "429" (with Retry-After), "slow" (sleeps past the client's timeout), "malformed".
`latency_s` delays every answer, as a busy API does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

ENDPOINTS = ("transcriptions", "chat")


@dataclass
class Seen:
    at: float
    fields: dict[str, Any]


@dataclass
class Endpoint:
    plan: deque[str] = field(default_factory=deque)
    default: str = "ok"
    seen: list[Seen] = field(default_factory=list)

    def next(self) -> str:
        return self.plan.popleft() if self.plan else self.default


def instance(schema: dict[str, Any], name: str = "value") -> Any:
    """A value valid against a (strict-mode) JSON schema, with recognisable content."""
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {key: instance(sub, key) for key, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [instance(schema["items"], f"{name} {i + 1}") for i in range(max(1, schema.get("minItems", 1)))]
    if kind in {"number", "integer"}:
        low, high = schema.get("minimum", 0), schema.get("maximum", 10)
        return low + (high - low) * 3 / 4
    if kind == "boolean":
        return True
    if name == "feedback":
        return "Stand-in feedback: a clear answer. Work on your pauses."
    return f"Stand-in {name}."


def strict_problems(schema: Any, path: str = "$") -> list[str]:
    """What OpenAI's strict structured outputs would refuse: open objects, optional properties."""
    problems: list[str] = []
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            if schema.get("additionalProperties") is not False:
                problems.append(f"{path}: additionalProperties must be false")
            if set(schema.get("required", [])) != set(schema.get("properties", {})):
                problems.append(f"{path}: every property must be required")
        for key, value in schema.items():
            problems += strict_problems(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            problems += strict_problems(value, f"{path}[{i}]")
    return problems


class OpenAIStandIn:
    def __init__(self) -> None:
        self.endpoints = {name: Endpoint() for name in ENDPOINTS}
        self.transcript = "Hello."
        self.language = "english"
        self.slow_s = 10.0
        self.latency_s = 0.0
        self.retry_after_s = 1
        self.base_url = ""
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # --- control from tests ---------------------------------------------------------------------------

    def reset(self, **defaults: str) -> None:
        for name, endpoint in self.endpoints.items():
            endpoint.plan.clear()
            endpoint.default = defaults.get(name, "ok")
            endpoint.seen.clear()
        self.language = "english"
        self.latency_s = 0.0

    def seen(self, name: str) -> list[Seen]:
        return list(self.endpoints[name].seen)

    # --- server ---------------------------------------------------------------------------------------

    def start(self) -> str:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self.base_url

    async def _start(self) -> None:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_post("/v1/audio/transcriptions", self._transcriptions)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _misbehave(self, behaviour: str) -> web.Response | None:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if behaviour == "500":
            return web.json_response({"error": {"message": "stand-in failure", "type": "server_error"}}, status=500)
        if behaviour == "429":
            return web.json_response(
                {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                status=429,
                headers={"retry-after": str(self.retry_after_s)},
            )
        if behaviour == "slow":
            await asyncio.sleep(self.slow_s)
        return None

    async def _transcriptions(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        fields: dict[str, Any] = {k: v for k, v in form.items() if k != "file"}
        fields["timestamp_granularities"] = form.getall("timestamp_granularities[]", [])
        fields["filename"] = getattr(upload, "filename", None)
        fields["file_bytes"] = len(upload.file.read()) if hasattr(upload, "file") else 0
        endpoint = self.endpoints["transcriptions"]
        endpoint.seen.append(Seen(time.monotonic(), fields))
        behaviour = endpoint.next()
        if (failure := await self._misbehave(behaviour)) is not None:
            return failure
        if behaviour == "malformed":
            return web.Response(text='{"text": "unterminated', content_type="application/json")
        words = self.transcript.split()
        step = 0.4
        body = {
            "task": "transcribe",
            "language": self.language,
            "duration": round(len(words) * step + 1, 2),
            "text": self.transcript,
            "words": [
                {"word": w.strip(".,"), "start": round(1 + i * step, 2), "end": round(1 + i * step + 0.3, 2)}
                for i, w in enumerate(words)
            ],
            "segments": [
                {
                    "id": 0,
                    "seek": 0,
                    "start": 1.0,
                    "end": round(1 + len(words) * step, 2),
                    "text": self.transcript,
                    "tokens": [1, 2, 3],
                    "temperature": float(fields.get("temperature", 0)),
                    "avg_logprob": -0.2,
                    "compression_ratio": 1.5,
                    "no_speech_prob": 0.01,
                }
            ],
        }
        return web.json_response(body)

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        endpoint = self.endpoints["chat"]
        endpoint.seen.append(Seen(time.monotonic(), body))
        behaviour = endpoint.next()
        if (failure := await self._misbehave(behaviour)) is not None:
            return failure
        response_format = body.get("response_format") or {}
        schema = (response_format.get("json_schema") or {}).get("schema")
        if response_format.get("type") != "json_schema" or not schema:
            return web.json_response({"error": {"message": "json_schema response_format expected"}}, status=400)
        if problems := strict_problems(schema):
            return web.json_response({"error": {"message": "; ".join(problems)}}, status=400)
        if behaviour == "malformed":
            content = '{"scores": {"delivery": {"score": 3'  # cut off mid-object
        else:
            value = instance(schema)
            Draft202012Validator(schema).validate(value)
            content = json.dumps(value)
        return web.json_response(
            {
                "id": "chatcmpl-standin",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content, "refusal": None},
                    }
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 100, "total_tokens": 200},
            }
        )
