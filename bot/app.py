"""The bot process: Telegram updates (long polling, or a webhook when configured), the feedback consumer,
daily reminders and the health server, with a graceful shutdown that loses no answer.

Answers a killed bot process left half-published are taken over by a background loop in every bot process
(`recover_stranded`).

Shutdown order: stop taking updates; wait for answers being stored and published; stop the feedback consumer
after its current event; flush the Kafka producer and check its delivery reports; close the sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from datetime import datetime
from ipaddress import ip_address
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault
from aiogram.utils.i18n import gettext as _
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import ClientSession, ClientTimeout, web

from bot import erasure, keyboards, repo
from bot.db import Database
from bot.delivery import Outbox
from bot.feedback import FeedbackConsumer
from bot.fsm import PostgresStorage
from bot.health import Heartbeat, health_app
from bot.i18n import LearnerI18nMiddleware, make_i18n
from bot.metrics import Metrics
from bot.middlewares import LearnerMiddleware, PrivateChatsOnly, UpdateOnceMiddleware
from bot.publisher import Publisher
from bot.routers import all_routers
from bot.routers.answers import recover_stranded
from bot.routers.payments import settle_stranded
from bot.services import Services
from bot.storage import AudioStore
from speech_coach.contracts.topics import Topic
from speech_coach.db import upgrade
from speech_coach.kafka import ensure_topics
from speech_coach.logging import configure_logging, get_logger
from speech_coach.observability.tracing import setup_tracing, shutdown_tracing
from speech_coach.privacy import InsecurePseudonymKey, require_private_key
from speech_coach.settings import Settings

log = get_logger("bot")
PUBLIC_COMMANDS = [
    "start", "practice", "stats", "last", "balance", "buy", "settings", "privacy", "delete_my_data", "paysupport",
    "help",
]  # fmt: skip


class BotNotConfigured(RuntimeError):
    pass


class _CheckedWebhook(SimpleRequestHandler):
    """Answers Telegram after the handler ran (not aiogram's default of at once), so an update whose handling
    crashed gets a 500 and Telegram sends it again; `UpdateOnceMiddleware` skips the ones already handled."""

    def __init__(self, *args: object, metrics: Metrics, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.metrics = metrics

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        ok = super().verify_secret(telegram_secret_token, bot)
        if not ok:  # aiogram answers 401
            self.metrics.forged_webhooks.inc()
            log.warning("forged webhook request refused", secret_present=bool(telegram_secret_token))
        return ok


class _GetUpdatesHeartbeat(BaseRequestMiddleware):
    """Beats the update loop's heartbeat on every getUpdates round trip (a long poll comes back at least every
    polling timeout), with the error when Telegram could not be reached."""

    def __init__(self, heartbeat: Heartbeat) -> None:
        self.heartbeat = heartbeat

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        if not isinstance(method, GetUpdates):
            return await make_request(bot, method)
        try:
            response = await make_request(bot, method)
        except Exception as exc:
            self.heartbeat.beat(f"{type(exc).__name__}: {exc}"[:200])
            raise
        self.heartbeat.beat()
        return response


def webhook_path(webhook_url: str) -> str:
    """The path Telegram posts to: the configured URL's own (an ingress forwards it unchanged)."""
    return urlsplit(webhook_url).path or "/"


def make_session(settings: Settings) -> AiohttpSession:
    base = settings.bot.api_base_url.rstrip("/")
    return AiohttpSession(api=TelegramAPIServer.from_base(base)) if base else AiohttpSession()


class BotApp:
    def __init__(self, settings: Settings) -> None:
        token = settings.bot.token.get_secret_value()
        if not token:
            raise BotNotConfigured("no bot token: set SC_BOT__TOKEN to the token @BotFather gave you")
        if settings.bot.webhook_url and not settings.bot.webhook_secret.get_secret_value():
            raise BotNotConfigured("a webhook needs a secret: set SC_BOT__WEBHOOK_SECRET (1-256 of A-Z a-z 0-9 _ -)")
        try:
            require_private_key(settings, "the bot")
        except InsecurePseudonymKey as exc:
            raise BotNotConfigured(str(exc)) from exc
        self.settings = settings
        self.metrics = Metrics()
        self.bot = Bot(token, session=make_session(settings), default=DefaultBotProperties(parse_mode=ParseMode.HTML))
        self.i18n = make_i18n()
        self.db = Database(settings, pooled=True)  # one pool for the handlers, the FSM storage and the loops
        self.dp = Dispatcher(storage=PostgresStorage(self.db))
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._runners: list[web.AppRunner] = []
        self._routers: list[Router] = []
        self.services: Services | None = None
        self.consumer: FeedbackConsumer | None = None
        self.outbox: Outbox | None = None
        stale = settings.bot.heartbeat_stale_s
        self.heartbeats = [Heartbeat("feedback_consumer", stale), Heartbeat("telegram_updates", stale)]

    # --- start -----------------------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Schema, seed questions, topics and bucket; then the dispatcher, health server and background tasks."""
        settings = self.settings
        await asyncio.to_thread(upgrade, settings)
        db = self.db
        if settings.bot.seed_questions:
            async with db.tx() as cur:
                if seeded := await repo.seed_questions_if_empty(cur):
                    log.info("question bank seeded", questions=seeded)
        await asyncio.to_thread(
            ensure_topics, settings, [Topic.RAW_ANSWERS, Topic.FEEDBACK, Topic.DELETION_REQUESTS, Topic.DEAD_LETTERS]
        )
        store = AudioStore(settings)
        await asyncio.to_thread(store.ensure_bucket)
        self.services = services = Services(settings, db, store, Publisher(settings, self.metrics), self.metrics)

        dp = self.dp
        dp["services"] = services
        dp.update.outer_middleware(PrivateChatsOnly())  # first: nothing else may see a group's updates
        dp.update.outer_middleware(UpdateOnceMiddleware(services))
        learner_mw = LearnerMiddleware(services)
        for name, observer in dp.observers.items():
            if name != "update":
                observer.outer_middleware(learner_mw)
        LearnerI18nMiddleware(self.i18n).setup(dp)
        self._routers = all_routers()
        dp.include_routers(*self._routers)

        runner = web.AppRunner(health_app(services, self.heartbeats))
        await runner.setup()
        await web.TCPSite(runner, settings.telemetry.bind_host, settings.bot.health_port).start()
        self._runners.append(runner)
        self.outbox = Outbox(services, self.bot, self.i18n)
        self.consumer = FeedbackConsumer(services, self.outbox, self.heartbeats[0])
        self._tasks.append(asyncio.create_task(self.consumer.run(), name="feedback-consumer"))
        self._tasks.append(asyncio.create_task(self._reminder_loop(), name="reminders"))
        self._tasks.append(asyncio.create_task(self._takeover_loop(), name="answer-takeover"))
        await self._set_commands()

    async def _set_commands(self) -> None:
        descriptions = {
            "start": "Start", "practice": "Practise", "stats": "Progress", "last": "Last feedback",
            "balance": "Credits", "buy": "Buy credits",
            "settings": "Settings", "privacy": "Privacy", "delete_my_data": "Delete my data",
            "paysupport": "Payment support", "help": "Help",
        }  # fmt: skip
        public = [BotCommand(command=c, description=descriptions[c]) for c in PUBLIC_COMMANDS]
        try:
            await self.bot.set_my_commands(public, scope=BotCommandScopeDefault())
            # Admin commands appear only in the admins' own chats.
            admin = [*public, BotCommand(command="admin_stats", description="Platform stats"),
                     BotCommand(command="broadcast", description="Message every learner"),
                     BotCommand(command="refund", description="Refund a Stars payment")]  # fmt: skip
            for admin_id in self.settings.bot.admin_ids:
                await self.bot.set_my_commands(admin, scope=BotCommandScopeChat(chat_id=admin_id))
        except TelegramAPIError as exc:
            log.warning("could not set the command menu", error=str(exc)[:200])

    async def run(self) -> None:
        """Run until `request_stop()`, then shut down gracefully."""
        with self.i18n.context():  # gettext outside handlers (feedback, reminders) finds the catalogs
            try:
                await self.prepare()
                if self.settings.bot.webhook_url:
                    await self._run_webhook()
                else:
                    await self._run_polling()
            finally:
                await self.shutdown()

    async def _run_polling(self) -> None:
        """Polling moves Telegram's offset on as updates are fetched, whatever their handling does: an update whose
        handler crashed is not sent again. What changes money or data is written first and finished by a sweep
        (answers, payments, deliveries), so a lost update loses no money or data (docs/reliability.md)."""
        self.bot.session.middleware(_GetUpdatesHeartbeat(self.heartbeats[1]))
        await self.bot.delete_webhook(drop_pending_updates=False)
        self.heartbeats[1].beat()  # Telegram answered; the first long poll may take its whole timeout to return
        polling = asyncio.create_task(
            self.dp.start_polling(
                self.bot,
                handle_signals=False,
                close_bot_session=False,
                allowed_updates=self.dp.resolve_used_update_types(),
                polling_timeout=10,
            )
        )
        log.info("bot polling", health_port=self.settings.bot.health_port)
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait([polling, stop], return_when=asyncio.FIRST_COMPLETED)
        if not polling.done():
            await self.dp.stop_polling()
        await polling

    async def _run_webhook(self) -> None:
        cfg = self.settings.bot
        app = web.Application()
        _CheckedWebhook(
            dispatcher=self.dp,
            bot=self.bot,
            secret_token=cfg.webhook_secret.get_secret_value(),
            metrics=self.metrics,
            handle_in_background=False,
        ).register(app, path=webhook_path(cfg.webhook_url))
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, cfg.webhook_host, cfg.webhook_port).start()
        self._runners.insert(0, runner)  # stops first
        await self.bot.set_webhook(
            cfg.webhook_url, secret_token=cfg.webhook_secret.get_secret_value(),
            allowed_updates=self.dp.resolve_used_update_types(),
        )  # fmt: skip
        log.info("bot webhook listening", port=cfg.webhook_port, path=webhook_path(cfg.webhook_url))
        await self._watch_webhook()

    async def _watch_webhook(self) -> None:
        """Telegram posts only when there are updates, so the listener is asked itself: a GET on the webhook path
        is answered (405) while the listener and the event loop serve."""
        cfg, heartbeat = self.settings.bot, self.heartbeats[1]
        host = cfg.webhook_host
        with contextlib.suppress(ValueError):
            if ip_address(host).is_unspecified:  # bound to every interface: ask over loopback
                host = "127.0.0.1"
        url = f"http://{host}:{cfg.webhook_port}{webhook_path(cfg.webhook_url)}"
        async with ClientSession(timeout=ClientTimeout(total=10)) as http:
            while not self._stop.is_set():
                try:
                    async with http.get(url) as response:
                        heartbeat.beat(None if response.status == 405 else f"webhook answered {response.status}")
                except Exception as exc:  # shown in /readyz
                    heartbeat.beat(f"webhook listener unreachable: {type(exc).__name__}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), min(15.0, cfg.heartbeat_stale_s / 3))

    def request_stop(self) -> None:
        self._stop.set()

    # --- stop ------------------------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        services = self.services
        if self._runners and self.settings.bot.webhook_url:
            await self._runners.pop(0).cleanup()  # no new webhook updates
        if services is not None and not await services.wait_idle(timeout=30):
            log.error("answers still in flight at shutdown")
        if self.consumer is not None:
            self.consumer.stop()
        for task in self._tasks:
            if task.get_name() == "reminders":
                task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("background task failed", task=task.get_name())
        if services is not None:
            await asyncio.to_thread(services.publisher.close)
        for runner in self._runners:
            await runner.cleanup()
        await self.db.close()
        await self.bot.session.close()
        # Routers are module singletons: detach them so another app in this process can include them.
        for router in self._routers:
            router._parent_router = None
        log.info("bot stopped")

    # --- answers whose publisher died ----------------------------------------------------------------------

    async def _takeover_loop(self) -> None:
        assert self.services is not None
        while not self._stop.is_set():
            try:
                with self.i18n.context():
                    if taken := await recover_stranded(self.services, self.bot, self.i18n):
                        log.info("stranded answers taken over", answers=taken)
                    if settled := await settle_stranded(self.services, self.bot):
                        log.info("stranded payments settled", payments=settled)
                    if self.outbox is not None and (sent := await self.outbox.deliver_due()):
                        log.info("deliveries retried and sent", deliveries=sent)
                    if erased := await erasure.finish_due(self.services, self.bot, self.i18n):
                        log.info("interrupted erasures finished", erasures=erased)
                async with self.services.db.tx() as cur:
                    await repo.prune_processed_updates(cur)
            except Exception:
                log.exception("taking over stranded answers failed")
            # Ends with the bot: shutdown waits for a takeover in progress through wait_idle.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.bot.recovery_interval_s)

    # --- reminders -------------------------------------------------------------------------------------------

    async def _reminder_loop(self) -> None:
        while True:
            try:
                await self.send_reminders(repo.now())
            except Exception:
                log.exception("reminders failed")
            await asyncio.sleep(60)

    async def send_reminders(self, now: datetime) -> int:
        """Remind learners who asked for it and have not practised today, once a day after the set hour."""
        if now.hour < self.settings.bot.reminder_hour_utc or self.services is None:
            return 0
        async with self.services.db.tx() as cur:
            await cur.execute(
                "SELECT l.id, l.chat_id, l.language FROM learners l WHERE l.reminders AND l.onboarded "
                "AND (l.last_reminded_on IS NULL OR l.last_reminded_on < %s::date) AND NOT EXISTS "
                "(SELECT 1 FROM answers a WHERE a.learner_id = l.id AND a.received_at::date = %s::date)",
                (now, now),
            )
            due = await cur.fetchall()
        sent = 0
        for row in due:
            async with self.services.db.tx() as cur:
                # Claimed, not just recorded: of several replicas (or loops) finding the same learner due, one sends.
                if not await repo.claim_reminder(cur, row["id"], now.date()):
                    continue
            sent += 1
            with self.i18n.context(), self.i18n.use_locale(row["language"]):
                try:
                    await self.bot.send_message(
                        row["chat_id"], _("Time for today's speaking practice!"), reply_markup=keyboards.menu()
                    )
                except TelegramAPIError as exc:
                    log.warning("reminder not sent", error=str(exc)[:200])
        return sent


def main() -> None:
    settings = Settings()
    configure_logging(settings.log.level, settings.log.json_output, settings.secret_values())
    # Per process, not per BotApp: the tracer provider is global (a no-op without SC_TELEMETRY__OTLP_ENDPOINT).
    setup_tracing(settings, "speech-coach-bot")
    try:
        app = BotApp(settings)
    except BotNotConfigured as exc:
        log.error("bot not started", reason=str(exc))
        raise SystemExit(2) from exc

    async def run() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, app.request_stop)
        await app.run()

    try:
        asyncio.run(run())
    finally:
        shutdown_tracing()
