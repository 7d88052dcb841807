"""Admin commands: platform stats and a broadcast. Only ids in SC_BOT__ADMIN_IDS reach them; for everyone
else the filter fails and the message falls through to the generic "unknown command" reply, so nothing hints
that they exist (they are not in anyone else's command menu either)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, Filter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, TelegramObject, User
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.callbacks import BroadcastCb
from bot.services import Services
from speech_coach.logging import get_logger

router = Router(name="admin")
log = get_logger("bot.admin")


class IsAdmin(Filter):
    async def __call__(self, event: TelegramObject, services: Services, event_from_user: User | None = None) -> Any:
        return event_from_user is not None and services.is_admin(event_from_user.id)


router.message.filter(IsAdmin())
router.callback_query.filter(IsAdmin())


class Broadcast(StatesGroup):
    text = State()


@router.message(Command("admin_stats"))
async def admin_stats(message: Message, services: Services) -> None:
    async with services.db.tx() as cur:
        await cur.execute(
            """
            SELECT (SELECT count(*) FROM learners) AS learners,
                   (SELECT count(*) FROM learners WHERE onboarded) AS onboarded,
                   (SELECT count(*) FROM answers) AS answers,
                   (SELECT count(*) FROM answers WHERE received_at > now() - interval '1 day') AS answers_24h,
                   (SELECT count(*) FROM answers WHERE status = 'delivered') AS delivered,
                   (SELECT count(*) FROM answers WHERE status IN ('failed', 'rejected')) AS failed,
                   (SELECT count(*) FROM payments) AS payments,
                   (SELECT COALESCE(sum(total_amount), 0) FROM payments) AS stars
            """
        )
        s = await cur.fetchone()
    assert s is not None
    await message.answer(
        "<b>Platform stats</b>\n"
        f"Learners: {s['learners']} ({s['onboarded']} onboarded)\n"
        f"Answers: {s['answers']} ({s['answers_24h']} in 24 h), feedback delivered: {s['delivered']}, "
        f"failed or rejected: {s['failed']}\n"
        f"Payments: {s['payments']} ({s['stars']} ⭐)"
    )


@router.message(Command("refund"))
async def refund(message: Message, command: CommandObject, services: Services, bot: Bot) -> None:
    """Refund a Stars payment (Telegram's refundStarPayment) and take back the credits it bought, never below zero."""
    from bot.routers.payments import payment_refunded_text, refund_stars, reverse

    charge = (command.args or "").strip()
    if not charge:
        await message.answer("Usage: /refund CHARGE_ID (the telegram_payment_charge_id, e.g. from /paysupport).")
        return
    async with services.db.tx() as cur:
        await cur.execute(
            "SELECT telegram_user_id, status FROM payments WHERE telegram_payment_charge_id = %s", (charge,)
        )
        row = await cur.fetchone()
    if row is None:
        await message.answer("No payment with that charge id.")
        return
    if row["status"] == "refunded":
        await message.answer("That payment was refunded already.")
        return
    if not await refund_stars(bot, row["telegram_user_id"], charge):
        await message.answer("Telegram did not refund the payment (the payer may have erased their data); see the log.")
        return
    outcome, taken, payment = await reverse(services, charge)
    log.info("admin refund", outcome=outcome, credits_taken=taken)
    assert payment is not None
    await message.answer(f"Refunded {payment['total_amount']} ⭐; {taken} credits taken back.", parse_mode=None)
    if outcome == "refunded" and payment["chat_id"] is not None:
        with contextlib.suppress(TelegramAPIError):
            await bot.send_message(
                payment["chat_id"], payment_refunded_text(payment["language"] or "en", payment["total_amount"], taken)
            )


@router.message(Command("broadcast"))
async def broadcast(message: Message, state: FSMContext) -> None:
    await state.set_state(Broadcast.text)
    await message.answer("Send the text to broadcast to every learner (HTML allowed), or /cancel.")


@router.message(Command("cancel"), Broadcast.text)
async def cancel(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer("Broadcast cancelled.")


@router.message(Broadcast.text, F.text)
async def broadcast_text(message: Message, state: FSMContext) -> None:
    await state.update_data(text=message.html_text)
    kb = InlineKeyboardBuilder()
    kb.button(text="Send", callback_data=BroadcastCb(send=True))
    kb.button(text="Cancel", callback_data=BroadcastCb(send=False))
    if len(message.text or "") + len("Preview:\n\n") <= 4096:
        await message.answer(f"Preview:\n\n{message.html_text}", reply_markup=kb.as_markup())
    else:  # the longest text Telegram delivers leaves no room for the heading: it goes alone, as it will be sent
        await message.answer("Preview:")
        await message.answer(message.html_text, reply_markup=kb.as_markup())


@router.callback_query(BroadcastCb.filter())
async def broadcast_send(
    query: CallbackQuery, callback_data: BroadcastCb, state: FSMContext, services: Services, bot: Bot
) -> None:
    await query.answer()
    assert isinstance(query.message, Message)
    text = (await state.get_data()).get("text")
    await state.clear()
    if not callback_data.send or not text:
        await query.message.answer("Broadcast cancelled.")
        return
    async with services.db.tx() as cur:
        await cur.execute("SELECT chat_id FROM learners WHERE onboarded")
        chats = [r["chat_id"] for r in await cur.fetchall()]
    sent = 0
    for chat_id in chats:
        try:
            await bot.send_message(chat_id, text)
            sent += 1
        except TelegramAPIError as exc:  # blocked the bot, deleted account...
            log.warning("broadcast message failed", error=str(exc))
        await asyncio.sleep(0.05)  # stay under Telegram's ~30 messages/s
    log.info("broadcast sent", recipients=sent)
    await query.message.answer(f"Broadcast sent to {sent} of {len(chats)} learners.")
