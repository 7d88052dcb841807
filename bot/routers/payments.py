"""Top-ups with Telegram Stars: invoice (currency XTR), pre-checkout check, successful payment, refunds, support.

Telegram has taken the Stars by the time `successful_payment` arrives, so the payment is written first, in its own
transaction, keyed by `telegram_payment_charge_id`; settling it (credit the pack, or refund the Stars when nobody
can be credited) is a second step that happens once. Whatever interrupts the two (a database restart, a deadlock,
SIGTERM in a rolling update) leaves a `received` row that the recovery sweep settles (`settle_stranded`). A
redelivered `successful_payment` finds the payment settled and says nothing more. `refunded_payment` updates and
the admins' `/refund` take back what the payment bought, never below zero.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, LabeledPrice, Message, PreCheckoutQuery
from aiogram.utils.i18n import gettext as _

from bot import keyboards, repo
from bot.callbacks import BuyCb
from bot.i18n import current_language
from bot.services import Services
from speech_coach.i18n import gettext, ngettext
from speech_coach.logging import get_logger

router = Router(name="payments")
log = get_logger("bot.payments")
CURRENCY = "XTR"  # Telegram Stars
# A payment the live handler is still settling is left alone by the sweep for this long.
SETTLE_GRACE_S = 30.0


def parse_payload(payload: str, packs: dict[int, int]) -> int | None:
    """Credits bought by this invoice payload, if it names a pack on sale."""
    kind, _sep, credits = payload.partition(":")
    if kind != "credits" or not credits.isdigit() or int(credits) not in packs:
        return None
    return int(credits)


@router.message(Command("buy"))
async def buy(message: Message, services: Services) -> None:
    await message.answer(_("Credit packs:"), reply_markup=keyboards.packs(services.settings.bot.packs))


@router.callback_query(BuyCb.filter())
async def invoice(query: CallbackQuery, callback_data: BuyCb, learner: repo.Learner | None, services: Services) -> None:
    await query.answer()
    assert isinstance(query.message, Message)
    packs = services.settings.bot.packs
    if learner is None or callback_data.credits not in packs:
        await query.message.answer(_("This pack is no longer available."), reply_markup=keyboards.packs(packs))
        return
    credits, lang = callback_data.credits, current_language()
    title = ngettext(lang, "{credits} Speech Coach credit", "{credits} Speech Coach credits", credits)
    description = ngettext(
        lang, "{credits} feedback on your spoken answers.", "{credits} feedbacks on your spoken answers.", credits
    )
    label = ngettext(lang, "{credits} credit", "{credits} credits", credits)
    await query.message.answer_invoice(
        title=title.format(credits=credits),
        description=description.format(credits=credits),
        payload=f"credits:{credits}",
        currency=CURRENCY,
        prices=[LabeledPrice(label=label.format(credits=credits), amount=packs[credits])],
    )


@router.pre_checkout_query()
async def pre_checkout(query: PreCheckoutQuery, learner: repo.Learner | None, services: Services) -> None:
    packs = services.settings.bot.packs
    credits = parse_payload(query.invoice_payload, packs)
    if learner is None or credits is None or query.currency != CURRENCY or query.total_amount != packs[credits]:
        log.warning("pre-checkout refused", payload=query.invoice_payload[:64], currency=query.currency)
        await query.answer(ok=False, error_message=_("This offer is no longer valid. Please open /buy again."))
        return
    await query.answer(ok=True)


@router.message(F.successful_payment)
async def paid(message: Message, learner: repo.Learner | None, services: Services, bot: Bot) -> None:
    payment = message.successful_payment
    assert payment is not None and message.from_user is not None
    credits = parse_payload(payment.invoice_payload, services.settings.bot.packs)
    record = repo.NewPayment(
        telegram_payment_charge_id=payment.telegram_payment_charge_id,
        learner_id=learner.id if learner is not None else None,
        telegram_user_id=message.from_user.id,
        chat_id=message.chat.id,
        provider_payment_charge_id=payment.provider_payment_charge_id or "",
        payload=payment.invoice_payload,
        currency=payment.currency,
        total_amount=payment.total_amount,
        credits=credits or 0,
    )
    async with services.db.tx() as cur:  # first and alone: from here on the payment cannot be lost
        if not await repo.record_payment(cur, record):
            log.info("payment message redelivered", charge_id=payment.telegram_payment_charge_id)
    await settle(services, bot, payment.telegram_payment_charge_id)


async def settle(services: Services, bot: Bot, charge_id: str) -> str:
    """Credit a received payment, or refund it when nobody can be credited; once. Returns what happened:
    credited, refunded, settled (by an earlier call) or pending (the refund failed; the sweep tries again)."""
    async with services.db.tx() as cur:
        row = await repo.payment_for_update(cur, charge_id)
        if row is None or row["status"] != "received":
            return "settled"
        matched = (
            row["learner_id"] is not None
            and row["credits"] > 0
            and services.settings.bot.packs.get(row["credits"]) == row["total_amount"]
            and row["currency"] == CURRENCY
        )
        if matched:
            await repo.add_credits(cur, row["learner_id"], row["credits"], "purchase", charge_id)
            await repo.mark_payment(cur, charge_id, "credited")
            total = await repo.balance(cur, row["learner_id"])
    lang = row["language"] or "en"
    if matched:
        services.metrics.payments.inc()
        log.info("payment credited", credits=row["credits"])
        text = ngettext(
            lang, "Thank you! {credits} credit added.", "Thank you! {credits} credits added.", row["credits"]
        ).format(credits=row["credits"])
        balance = ngettext(lang, "Your balance: {total} credit.", "Your balance: {total} credits.", total)
        await _tell(bot, row["chat_id"], text + " " + balance.format(total=total))
        return "credited"
    # Telegram took the Stars but there is nobody to credit (an erased learner, a pack no longer on sale).
    if not await refund_stars(bot, row["telegram_user_id"], charge_id):
        async with services.db.tx() as cur:
            await cur.execute(
                "UPDATE payments SET settle_attempts = settle_attempts + 1 WHERE telegram_payment_charge_id = %s",
                (charge_id,),
            )
        return "pending"
    async with services.db.tx() as cur:
        await repo.mark_payment(cur, charge_id, "refunded")
    log.warning("unmatched payment refunded", charge_id=charge_id, stars=row["total_amount"])
    await _tell(bot, row["chat_id"], gettext(lang, "We could not match this payment to a credit pack, so your "
                                                   "Stars were refunded."))  # fmt: skip
    return "refunded"


async def settle_stranded(services: Services, bot: Bot) -> int:
    """The recovery sweep: settle payments whose handler did not finish (run by every bot process)."""
    async with services.db.tx() as cur:
        charges = await repo.payments_to_settle(cur, SETTLE_GRACE_S)
    outcomes = [await settle(services, bot, charge) for charge in charges]
    return sum(o in ("credited", "refunded") for o in outcomes)


async def refund_stars(bot: Bot, telegram_user_id: int | None, charge_id: str) -> bool:
    if telegram_user_id is None:
        log.error("payment cannot be refunded: no payer id", charge_id=charge_id)
        return False
    try:
        await bot.refund_star_payment(user_id=telegram_user_id, telegram_payment_charge_id=charge_id)
    except TelegramBadRequest as exc:
        if "ALREADY_REFUNDED" in str(exc).upper():
            return True
        log.error("refundStarPayment refused", charge_id=charge_id, error=str(exc)[:200])
        return False
    except TelegramAPIError as exc:
        log.warning("refundStarPayment failed", charge_id=charge_id, error=str(exc)[:200])
        return False
    return True


async def _tell(bot: Bot, chat_id: int | None, text: str) -> None:
    if chat_id is None:
        return
    try:
        await bot.send_message(chat_id, text)
    except TelegramAPIError as exc:  # the payment is settled all the same; /balance shows it
        log.warning("payment message not sent", error=str(exc)[:200])


async def reverse(services: Services, charge_id: str) -> tuple[str, int, dict[str, object] | None]:
    """Mark a payment refunded and take back what it bought (never below zero), once. Returns
    (refunded | already | unknown, credits taken back, the payment row)."""
    async with services.db.tx() as cur:
        row = await repo.payment_for_update(cur, charge_id)
        if row is None:
            return "unknown", 0, None
        if row["status"] == "refunded":
            return "already", 0, row
        taken = 0
        if row["status"] == "credited" and row["learner_id"] is not None:
            taken = await repo.reverse_payment_credits(cur, row["learner_id"], row["credits"], charge_id)
        await repo.mark_payment(cur, charge_id, "refunded")
    return "refunded", taken, row


@router.message(F.refunded_payment)
async def refunded(message: Message, services: Services) -> None:
    """Telegram refunded a payment (our own refund, or one its support made): the credits it bought go back."""
    refund = message.refunded_payment
    assert refund is not None
    outcome, taken, _payment = await reverse(services, refund.telegram_payment_charge_id)
    if outcome == "unknown":
        log.error("refund of an unknown payment", charge_id=refund.telegram_payment_charge_id)
        return
    if outcome == "already":
        return
    log.info("payment refunded", credits_taken=taken)
    await message.answer(payment_refunded_text(current_language(), refund.total_amount, taken))


def payment_refunded_text(lang: str, stars: int, taken: int) -> str:
    text = gettext(lang, "Your payment of {stars} ⭐ was refunded.").format(stars=stars)
    if taken:
        removed = ngettext(lang, "{taken} credit it bought was removed.", "{taken} credits it bought were removed.",
                           taken)  # fmt: skip
        text += " " + removed.format(taken=taken)
    return text


@router.message(Command("paysupport"))
async def paysupport(message: Message, command: CommandObject, learner: repo.Learner | None, services: Services,
                     bot: Bot) -> None:  # fmt: skip
    """Telegram's terms for Stars: every bot that sells answers payment questions under /paysupport."""
    question = (command.args or "").strip()
    if not question:
        await message.answer(_(
            "<b>Payment support</b>\n"
            "Credits you bought and have not used can be refunded. Send /paysupport followed by your question, "
            "for example: <code>/paysupport I was charged twice</code>. It goes to the people who run this bot, "
            "who answer here within two days."
        ))  # fmt: skip
        return
    charges: list[str] = []
    if learner is not None:
        async with services.db.tx() as cur:
            await cur.execute(
                "SELECT telegram_payment_charge_id, credits, status FROM payments WHERE learner_id = %s "
                "ORDER BY paid_at DESC LIMIT 5",
                (learner.id,),
            )
            charges = [f"{r['telegram_payment_charge_id']} ({r['credits']} credits, {r['status']})"
                       for r in await cur.fetchall()]  # fmt: skip
    assert message.from_user is not None
    report = (
        f"Payment support request from learner {services.pseudonym(message.from_user.id)} "
        f"(reply with /refund CHARGE_ID to refund):\n{question[:1500]}\nRecent payments: {', '.join(charges) or 'none'}"
    )
    for admin_id in services.settings.bot.admin_ids:
        try:
            await bot.send_message(admin_id, report, parse_mode=None)
        except TelegramAPIError as exc:
            log.warning("support request not forwarded", error=str(exc)[:200])
    log.info("payment support request", forwarded_to=len(services.settings.bot.admin_ids))
    await message.answer(_("Thank you. Your question was passed on; we answer here within two days."))
