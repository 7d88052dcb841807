"""A local Telegram Bot API stand-in that speaks the Bot API's JSON, for driving the real aiogram bot.

It serves `/bot<token>/<method>` (getMe, getUpdates long polling, sendMessage, sendPhoto, sendInvoice,
answerCallbackQuery, answerPreCheckoutQuery, getFile, edit*, set/deleteWebhook, setMyCommands) and
`/file/bot<token>/<path>` downloads, records every call, and lets a test inject updates as a user would cause
them. Like Telegram, it refuses messages over 4096 characters and HTML it cannot parse.

It runs on its own thread and event loop, so synchronous tests can drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

# The token the bot under test uses; the stand-in serves exactly this one.
TOKEN = "123456789:TEST-token-for-the-stand-in"
BOT_USER = {"id": 777000111, "is_bot": True, "first_name": "Speech Coach", "username": "speech_coach_test_bot"}
JSON_FIELDS = {
    "reply_markup",
    "prices",
    "commands",
    "scope",
    "allowed_updates",
    "reply_parameters",
    "link_preview_options",
}
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "blockquote",
                "tg-spoiler", "span", "tg-emoji"}  # fmt: skip


class _HtmlCheck(HTMLParser):
    """Telegram's HTML rules: known tags only, properly nested; returns the visible text length."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text = 0
        self.error = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.error = self.error or f'Unsupported start tag "{tag}"'
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.error = self.error or f'Unexpected end tag "{tag}"'

    def handle_data(self, data: str) -> None:
        self.text += len(data)


def check_html(text: str) -> tuple[int, str]:
    parser = _HtmlCheck()
    parser.feed(text)
    parser.close()
    if parser.stack and not parser.error:
        parser.error = f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"'
    return parser.text, parser.error


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    result: Any = None
    at: float = field(default_factory=time.monotonic)  # when the stand-in answered it


@dataclass
class _Failure:
    code: int
    retry_after: int | None
    times: int = 0
    until: float = 0.0
    after: int = 0  # calls let through first

    def take(self) -> bool:
        if self.after > 0:
            self.after -= 1
            return False
        if self.until:
            return time.monotonic() < self.until
        if self.times > 0:
            self.times -= 1
            return True
        return False

    def response(self) -> web.Response:
        description = _DESCRIPTIONS.get(self.code, "Error")
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": description}
        if self.code == 429:
            body["description"] = f"Too Many Requests: retry after {self.retry_after or 1}"
            body["parameters"] = {"retry_after": self.retry_after or 1}
        return web.json_response(body, status=self.code)


_DESCRIPTIONS = {500: "Internal Server Error", 502: "Bad Gateway", 429: "Too Many Requests"}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class TelegramStandIn:
    def __init__(self, token: str) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id -> (path, content)
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._failures: dict[str, _Failure] = {}  # method -> how its next calls fail
        self.blocked: set[int] = set()  # chats whose user blocked the bot: sending to them is refused (403)
        self.refunded: set[str] = set()  # Stars payments refunded with refundStarPayment
        self.file_delay_s = 0.0  # how long a file download takes: holds the bot mid-answer for fault tests
        self.method_delay_s: dict[str, float] = {}  # how long a method takes: holds the bot mid-send
        self.served: dict[str, int] = {}  # file path -> bytes written to the downloader
        self._message_ids = itertools.count(5000)
        self._lock = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._new_update: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._loop.run_forever, name="telegram-stand-in", daemon=True)

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> TelegramStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._new_update = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._api)
        app.router.add_get("/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)  # it plays Telegram: its logs are not the platform's
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- the Bot API ----------------------------------------------------------------------------------------

    async def _api(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        params: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        if request.content_type == "application/json":
            params = await request.json()
        else:
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = value.file.read()
                else:
                    params[key] = json.loads(value) if key in JSON_FIELDS else value
        for key, value in list(params.items()):  # aiogram uploads files as attach://<field>
            if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
                files[key] = files.pop(value[9:])
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)
        call = Call(method, params, files)
        with self._lock:
            failure = self._failures.get(method)
            if failure is not None and failure.take():
                self.calls.append(Call(f"{method} (failed)", params, files))
                self._lock.notify_all()
                return failure.response()
            if method.startswith("send") and _int(params.get("chat_id")) in self.blocked:
                self.calls.append(Call(f"{method} (blocked)", params, files))
                self._lock.notify_all()
                blocked = {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
                return web.json_response(blocked, status=403)
        if delay := self.method_delay_s.get(method):
            await asyncio.sleep(delay)
        if method == "getUpdates":
            result = await self._m_getUpdates(params)
            return web.json_response({"ok": True, "result": result})
        try:
            result = handler(params, files)
        except _ApiError as exc:
            return web.json_response({"ok": False, "error_code": 400, "description": exc.args[0]}, status=400)
        call.result, call.at = result, time.monotonic()  # answered now (a delayed method arrived earlier)
        with self._lock:
            self.calls.append(call)
            self._lock.notify_all()
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401)
        with self._lock:  # `fail("download")` makes file downloads fail like method calls
            failure = self._failures.get("download")
            if failure is not None and failure.take():
                self.calls.append(Call("download (failed)", {"path": request.match_info["path"]}))
                self._lock.notify_all()
                return web.Response(status=500)
        if self.file_delay_s:
            await asyncio.sleep(self.file_delay_s)
        for path, content in self.files.values():
            if path == request.match_info["path"]:
                return await self._stream(request, path, content)
        return web.Response(status=404)

    async def _stream(self, request: web.Request, path: str, content: bytes) -> web.StreamResponse:
        """In 64 KiB chunks, counting what was written (`served`), so a test sees where a client hung up."""
        response = web.StreamResponse(headers={"Content-Length": str(len(content))})
        await response.prepare(request)
        self.served[path] = 0
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(content), 65536):
                await response.write(content[start : start + 65536])
                self.served[path] = start + len(content[start : start + 65536])
            await response.write_eof()
        return response

    def _message(self, chat_id: Any, **extra: Any) -> dict[str, Any]:
        return {"message_id": next(self._message_ids), "date": int(time.time()), "from": BOT_USER,
                "chat": {"id": int(chat_id), "type": "private"}, **extra}  # fmt: skip

    def _m_getMe(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return BOT_USER

    async def _m_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        deadline = time.monotonic() + min(float(params.get("timeout") or 0), 2.0)
        assert self._new_update is not None
        while True:
            with self._lock:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
                pending = list(self._updates)
                self._lock.notify_all()
            if pending or time.monotonic() >= deadline:
                return pending
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), max(0.0, deadline - time.monotonic()))

    def _m_sendMessage(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        text = str(params["text"])
        if params.get("parse_mode") == "HTML":
            visible, error = check_html(text)
            if error:
                raise _ApiError(f"Bad Request: can't parse entities: {error}")
        else:
            visible = len(text)
        if visible > 4096:
            raise _ApiError("Bad Request: message is too long")
        return self._message(params["chat_id"], text=text)

    def _m_sendPhoto(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._message(params["chat_id"], photo=[{"file_id": "photo1", "file_unique_id": "p1", "width": 1,
                                                        "height": 1}], caption=params.get("caption"))  # fmt: skip

    def _m_sendInvoice(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        total = sum(p["amount"] for p in params["prices"])
        invoice = {"title": params["title"], "description": params["description"], "start_parameter": "",
                   "currency": params["currency"], "total_amount": total}  # fmt: skip
        return self._message(params["chat_id"], invoice=invoice)

    def _m_refundStarPayment(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        charge = params["telegram_payment_charge_id"]
        if charge in self.refunded:
            raise _ApiError("Bad Request: CHARGE_ALREADY_REFUNDED")
        self.refunded.add(charge)
        return True

    def _m_getFile(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        file_id = params["file_id"]
        if file_id not in self.files:
            raise _ApiError("Bad Request: invalid file_id")
        path, content = self.files[file_id]
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(content), "file_path": path}

    def _ok(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return True

    _m_answerCallbackQuery = _m_answerPreCheckoutQuery = _m_setWebhook = _m_deleteWebhook = _ok
    _m_setMyCommands = _m_editMessageReplyMarkup = _m_sendChatAction = _ok

    def _m_editMessageText(self, params: dict[str, Any], files: dict[str, bytes]) -> Any:
        return self._message(params["chat_id"], text=params["text"])

    # --- what tests use ---------------------------------------------------------------------------------------

    def inject(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update (a fresh update_id unless it has one, e.g. to simulate a redelivery)."""
        update = {"update_id": next(self._update_ids), **update}
        with self._lock:
            self._updates.append(update)
            self.calls.append(Call("(update)", update))  # kept in order with the bot's calls, for transcripts
        if self._new_update is not None:
            self._loop.call_soon_threadsafe(self._new_update.set)
        return update

    def fail(
        self, method: str, times: int = 1, *, code: int = 500, retry_after: int | None = None, after: int = 0
    ) -> None:
        """Answer the next `times` calls of `method` (or file downloads: "download") with a 500, as Telegram does
        when it has a bad moment, or with another code: 429 with `retry_after` is its flood control (each recorded
        as a call of "<method> (failed)"), after letting the next `after` calls through."""
        with self._lock:
            self._failures[method] = _Failure(code, retry_after, times=times, after=after)

    def outage(self, methods: list[str], seconds: float, *, code: int = 500, retry_after: int | None = None) -> None:
        """Fail every call of these methods for the next `seconds`."""
        until = time.monotonic() + seconds
        with self._lock:
            for method in methods:
                self._failures[method] = _Failure(code, retry_after, until=until)

    def add_file(self, content: bytes, suffix: str = "oga") -> tuple[str, str]:
        file_id = f"F{uuid.uuid4().hex[:12]}"
        unique = f"U{uuid.uuid4().hex[:10]}"
        self.files[file_id] = (f"voice/{file_id}.{suffix}", content)
        return file_id, unique

    def wait_for(self, predicate: Callable[[list[Call]], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = predicate(self.calls)
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    methods = [(c.method, str(c.params.get("text", ""))[:60]) for c in self.calls[-10:]]
                    raise AssertionError(f"stand-in: condition not met in {timeout} s; last calls: {methods}")
                self._lock.wait(min(left, 0.2))

    def sent(self, chat_id: int, method: str = "sendMessage") -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and int(c.params.get("chat_id", 0)) == chat_id]

    def wait_sent(self, chat_id: int, count: int, method: str = "sendMessage", timeout: float = 20.0) -> list[Call]:
        """Wait until `count` calls of `method` to this chat exist; returns all of them."""
        return self.wait_for(lambda _c: (s := self.sent(chat_id, method)) and len(s) >= count and s, timeout)

    def drained(self) -> bool:
        with self._lock:
            return not self._updates


class _ApiError(Exception):
    pass


_counter = itertools.count(1)


class User:
    """A Telegram user talking to the bot in a private chat."""

    def __init__(
        self, tg: TelegramStandIn, user_id: int | None = None, language_code: str = "en", first_name: str = "Learner",
        username: str | None = None,
    ) -> None:  # fmt: skip
        self.tg = tg
        self.id = user_id or 100000 + next(_counter) * 7919
        self.language_code = language_code
        self.first_name = first_name
        self.username = username or f"learner{self.id}"
        self._message_ids = itertools.count(1)

    @property
    def user(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": False, "first_name": self.first_name, "username": self.username,
                "language_code": self.language_code}  # fmt: skip

    def message(self, **content: Any) -> dict[str, Any]:
        msg = {"message_id": next(self._message_ids), "date": int(time.time()), "from": self.user,
               "chat": {"id": self.id, "type": "private", "first_name": self.first_name}, **content}  # fmt: skip
        return self.tg.inject({"message": msg})

    def text(self, text: str) -> dict[str, Any]:
        entities = (
            [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}] if text.startswith("/") else []
        )
        return self.message(text=text, entities=entities)

    def voice(self, content: bytes, duration: int, file_size: int | None = None) -> dict[str, Any]:
        file_id, unique = self.tg.add_file(content)
        voice = {"file_id": file_id, "file_unique_id": unique, "duration": duration, "mime_type": "audio/ogg",
                 "file_size": len(content) if file_size is None else file_size}  # fmt: skip
        return self.message(voice=voice)

    def sent(self, method: str = "sendMessage") -> list[Call]:
        return self.tg.sent(self.id, method)

    def wait_sent(self, count: int, method: str = "sendMessage", timeout: float = 20.0) -> list[Call]:
        return self.tg.wait_sent(self.id, count, method, timeout)

    def last_text(self) -> str:
        return str(self.sent()[-1].params["text"])

    def button(self, label: str | re.Pattern[str]) -> str:
        """callback_data of the newest button with this label."""
        for call in reversed(self.sent()):
            for row in (call.params.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if label.search(button["text"]) if isinstance(label, re.Pattern) else button["text"] == label:
                        return str(button["callback_data"])
        raise AssertionError(f"no button {label!r} in messages to {self.id}")

    def press(self, label: str | re.Pattern[str]) -> dict[str, Any]:
        data = self.button(label)
        message = {"message_id": 1, "date": int(time.time()), "from": BOT_USER,
                   "chat": {"id": self.id, "type": "private"}, "text": "..."}  # fmt: skip
        return self.tg.inject({"callback_query": {"id": uuid.uuid4().hex, "from": self.user, "message": message,
                                                  "chat_instance": str(self.id), "data": data}})  # fmt: skip


def transcript(tg: TelegramStandIn, chat_id: int) -> str:
    """The conversation with one user as Markdown: what they did, and what the bot sent (tags shown plainly)."""
    lines: list[str] = []
    labels: dict[str, str] = {}

    def plain(html: str) -> str:
        text = re.sub(r"</?(b|strong)>", "**", html)
        text = re.sub(r"</?(i|em)>", "_", text)
        text = re.sub(r"<blockquote[^>]*>", "\n> ", text).replace("</blockquote>", "\n")
        text = re.sub(r"<[^>]+>", "", text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        return "\n".join(f"> {ln}" if ln and not ln.startswith(">") else ln for ln in text.splitlines())

    for call in tg.calls:
        if call.method == "(update)":
            upd = call.params
            msg = upd.get("message") or {}
            if (msg.get("from") or upd.get("callback_query", {}).get("from") or {}).get("id") != chat_id:
                continue
            if "text" in msg:
                lines.append(f"**Learner:** `{msg['text']}`")
            elif "voice" in msg:
                lines.append(f"**Learner:** 🎤 voice message, {msg['voice']['duration']} s")
            elif "callback_query" in upd:
                data = upd["callback_query"]["data"]
                lines.append(f"**Learner** taps [{labels.get(data, data)}]")
            elif msg:
                lines.append(
                    f"**Learner:** ({', '.join(k for k in msg if k not in ('message_id', 'date', 'from', 'chat'))})"
                )
            continue
        if int(call.params.get("chat_id", 0) or 0) != chat_id:
            continue
        if call.method == "sendMessage":
            rows = (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
            labels.update({b["callback_data"]: b["text"] for row in rows for b in row if "callback_data" in b})
            buttons = [b["text"] for row in rows for b in row]
            text = plain(str(call.params["text"]))
            text = "\n".join(ln if len(ln) < 400 else ln[:300] + " …" for ln in text.splitlines())
            lines.append("**Bot:**\n\n" + text + ("\n>\n> " + " ".join(f"[{b}]" for b in buttons) if buttons else ""))
        elif call.method == "sendPhoto":
            lines.append(f"**Bot:** 🖼 progress chart (PNG) — {call.params.get('caption', '')}")
        elif call.method == "sendInvoice":
            lines.append(f"**Bot:** 🧾 invoice {call.params['title']} ({call.params['currency']})")
    return "\n\n".join(lines) + "\n"


def onboard(tg: TelegramStandIn, track: str | None = None, timeout: float = 30) -> User:
    """A new learner: /start, English, consent, and the first question of `track` if given."""
    user = User(tg)
    user.text("/start")
    user.wait_sent(1, timeout=timeout)
    user.press("English")
    user.wait_sent(2)
    user.press("I agree")
    user.wait_sent(3)
    if track is not None:
        user.press(track)
        user.wait_sent(4)
    return user
