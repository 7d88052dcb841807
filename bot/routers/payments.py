"""Top-ups with Telegram Stars: invoice (currency XTR), pre-checkout check, successful payment.

The credit is booked once per `telegram_payment_charge_id`, so a redelivered payment message adds nothing.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, LabeledPrice, Message, PreCheckoutQuery
from aiogram.utils.i18n import gettext as _

from bot import keyboards, repo
from bot.callbacks import BuyCb
from bot.i18n import current_language
from bot.services import Services
from speech_coach.i18n import ngettext
from speech_coach.logging import get_logger

router = Router(name="payments")
log = get_logger("bot.payments")
CURRENCY = "XTR"  # Telegram Stars


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
async def paid(message: Message, learner: repo.Learner | None, services: Services) -> None:
    payment = message.successful_payment
    assert payment is not None
    credits = parse_payload(payment.invoice_payload, services.settings.bot.packs)
    if learner is None or credits is None:
        # Telegram took the Stars: keep the record for a manual refund (refundStarPayment).
        log.error("payment for an unknown pack or learner", charge_id=payment.telegram_payment_charge_id)
        await message.answer(_("We could not match this payment. Please contact support; you will be refunded."))
        return
    async with services.db.tx() as cur:
        await cur.execute(
            "INSERT INTO payments (telegram_payment_charge_id, learner_id, provider_payment_charge_id, payload, "
            "currency, total_amount, credits) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING "
            "RETURNING telegram_payment_charge_id",
            (payment.telegram_payment_charge_id, learner.id, payment.provider_payment_charge_id or "",
             payment.invoice_payload, payment.currency, payment.total_amount, credits),
        )  # fmt: skip
        new = await cur.fetchone() is not None
        if new:
            await repo.add_credits(cur, learner.id, credits, "purchase", payment.telegram_payment_charge_id)
        total = await repo.balance(cur, learner.id)
    if new:
        services.metrics.payments.inc()
        log.info("payment credited", credits=credits)
    await message.answer(
        _("Thank you! {credits} credits added. Your balance: {total} credits.").format(credits=credits, total=total)
    )
