"""Telegram Stars payments through the real bot and the Telegram stand-in: every payment is credited or refunded
exactly once, whatever interrupts its handling; refunds take back what a payment bought; /paysupport reaches the
operators; erasing and starting again does not grant the starter credits twice (issue 17, items 4 and 5)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from control.harness.telegram import TelegramStandIn, User
from control.stack import Stack
from speech_coach.settings import Settings
from tests.bot_harness import ADMIN_ID, RunningBot, bot_settings, onboard, rows

pytestmark = pytest.mark.stack


@pytest.fixture
def fast_sweep(stack: Stack, pg_database: str, s3_bucket: str, tg: TelegramStandIn) -> Iterator[RunningBot]:
    bot = RunningBot(bot_settings(stack.settings, pg_database, s3_bucket, tg, recovery_interval_s=0.5)).start()
    yield bot
    bot.stop()


def pay(user: User, charge: str, payload: str = "credits:10", amount: int = 50) -> None:
    paid = {"currency": "XTR", "total_amount": amount, "invoice_payload": payload,
            "telegram_payment_charge_id": charge, "provider_payment_charge_id": ""}  # fmt: skip
    user.message(successful_payment=paid)


def ledger(settings: Settings, user: User) -> list[tuple[Any, ...]]:
    return rows(settings, "SELECT c.reason, c.delta, c.balance_after FROM credit_ledger c JOIN learners l ON "
                          "l.id = c.learner_id WHERE l.telegram_user_id = %s ORDER BY c.id", user.id)  # fmt: skip


def payment(settings: Settings, charge: str) -> tuple[Any, ...]:
    (row,) = rows(settings, "SELECT status, credits, telegram_user_id IS NOT NULL FROM payments "
                            "WHERE telegram_payment_charge_id = %s", charge)  # fmt: skip
    return row


def quiet(user: User, count: int, seconds: float = 2.0) -> None:
    """Nothing more is said to the user for a while."""
    time.sleep(seconds)
    assert len(user.sent()) == count, [c.params.get("text") for c in user.sent()[count:]]


def test_a_payment_is_credited_and_thanked_for_once(running_bot: RunningBot, tg: TelegramStandIn,
                                                    bot_env: Settings) -> None:  # fmt: skip
    user = onboard(tg)
    n = len(user.sent())
    pay(user, "charge-once")
    assert user.wait_sent(n + 1)[-1].params["text"] == "Thank you! 10 credits added. Your balance: 13 credits."
    pay(user, "charge-once")  # Telegram redelivers the service message
    quiet(user, n + 1)
    assert ledger(bot_env, user) == [("starter", 3, 3), ("purchase", 10, 13)]
    assert payment(bot_env, "charge-once") == ("credited", 10, True)


def test_a_payment_whose_crediting_failed_is_kept_and_credited_by_the_sweep(
    fast_sweep: RunningBot, tg: TelegramStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails between writing the payment and crediting it (a restart, a deadlock): the payment is
    already stored, and the recovery sweep credits it once."""
    from bot import repo

    settings = fast_sweep.settings
    user = onboard(tg)
    n = len(user.sent())
    real = repo.add_credits
    failures = iter([psycopg.OperationalError("server closed the connection unexpectedly")])

    async def flaky(cur: Any, learner_id: uuid.UUID, delta: int, reason: str, ref: str) -> bool:
        if reason == "purchase" and (error := next(failures, None)) is not None:
            raise error
        return await real(cur, learner_id, delta, reason, ref)

    monkeypatch.setattr(repo, "add_credits", flaky)
    pay(user, "charge-interrupted")
    # The handler failed after the payment was written: it waits for the sweep, which leaves it a grace period.
    tg.wait_for(lambda _c: rows(settings, "SELECT status FROM payments") == [("received",)], 20)
    rows_before = rows(settings, "SELECT count(*) FROM credit_ledger WHERE reason = 'purchase'")
    assert rows_before == [(0,)]
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:  # skip the grace period
        conn.execute("UPDATE payments SET paid_at = paid_at - interval '1 minute'")
    assert "10 credits added" in user.wait_sent(n + 1, timeout=30)[-1].params["text"]
    quiet(user, n + 1)
    assert ledger(settings, user) == [("starter", 3, 3), ("purchase", 10, 13)]
    assert payment(settings, "charge-interrupted") == ("credited", 10, True)


def test_payments_nobody_can_be_credited_for_are_refunded(running_bot: RunningBot, tg: TelegramStandIn,
                                                          bot_env: Settings) -> None:  # fmt: skip
    learner = onboard(tg)
    n = len(learner.sent())
    pay(learner, "charge-old-pack", payload="credits:9999", amount=1)  # a pack no longer on sale
    stranger = User(tg)  # never started the bot (or erased their data)
    pay(stranger, "charge-stranger")
    for user, count in ((learner, n + 1), (stranger, 1)):
        assert "your Stars were refunded" in user.wait_sent(count)[-1].params["text"]
    assert tg.refunded == {"charge-old-pack", "charge-stranger"}
    assert payment(bot_env, "charge-old-pack") == ("refunded", 0, True)
    assert payment(bot_env, "charge-stranger") == ("refunded", 10, False)  # nobody to link it to: ids cleared
    assert ledger(bot_env, learner) == [("starter", 3, 3)]


def test_refunds_take_back_what_the_payment_bought_never_below_zero(
    running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings
) -> None:
    user = onboard(tg)
    pay(user, "charge-a")
    pay(user, "charge-b")
    tg.wait_for(lambda _c: len(ledger(bot_env, user)) == 3)
    with psycopg.connect(bot_env.postgres_url, autocommit=True) as conn:  # 18 of the 23 credits are spent
        conn.execute(
            "INSERT INTO credit_ledger (learner_id, delta, balance_after, reason, ref) "
            "SELECT id, -18, 0, 'answer', 'spent' FROM learners WHERE telegram_user_id = %s",
            (user.id,),
        )
    n = len(user.sent())
    # Telegram's support refunds payment A: its 10 credits go back, all of them.
    refund = {"currency": "XTR", "total_amount": 50, "invoice_payload": "credits:10",
              "telegram_payment_charge_id": "charge-a"}  # fmt: skip
    user.message(refunded_payment=refund)
    text = user.wait_sent(n + 1)[-1].params["text"]
    assert text == "Your payment of 50 ⭐ was refunded. 5 credits it bought were removed."
    user.message(refunded_payment=refund)  # redelivered: nothing more
    quiet(user, n + 1)
    # The admin refunds payment B: nothing is left to take back.
    admin = User(tg, user_id=ADMIN_ID)
    admin.text("/refund charge-b")
    assert admin.wait_sent(1)[-1].params["text"] == "Refunded 50 ⭐; 0 credits taken back."
    assert "charge-b" in tg.refunded
    assert user.wait_sent(n + 2)[-1].params["text"] == "Your payment of 50 ⭐ was refunded."
    admin.text("/refund charge-b")
    assert admin.wait_sent(2)[-1].params["text"] == "That payment was refunded already."
    assert [r[:2] for r in ledger(bot_env, user)][-2:] == [("answer", -18), ("payment_refund", -5)]
    assert rows(bot_env, "SELECT status FROM payments ORDER BY telegram_payment_charge_id") == [
        ("refunded",), ("refunded",),
    ]  # fmt: skip


def test_paysupport_explains_and_passes_questions_to_the_operators(
    running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings
) -> None:
    user = onboard(tg)
    pay(user, "charge-support")
    n = len(user.wait_sent(4))
    user.text("/paysupport")
    assert "Payment support" in user.wait_sent(n + 1)[-1].params["text"]
    user.text("/paysupport I was charged twice")
    assert "passed on" in user.wait_sent(n + 2)[-1].params["text"]
    (forwarded,) = tg.sent(ADMIN_ID)
    text = forwarded.params["text"]
    assert "I was charged twice" in text and "charge-support (10 credits, credited)" in text
    assert str(user.id) not in text  # the operators see the learner's pseudonym, not their Telegram id


def test_deleting_and_starting_again_does_not_grant_the_starter_credits_twice(
    running_bot: RunningBot, tg: TelegramStandIn, bot_env: Settings
) -> None:
    user = onboard(tg)
    assert "You have 3 free credits" in user.sent()[-1].params["text"]
    user.text("/delete_my_data")
    user.wait_sent(4)
    user.press("Yes, delete everything")
    assert "All your data has been deleted" in user.wait_sent(5)[-1].params["text"]
    (stored,) = rows(bot_env, "SELECT account_hash FROM erased_accounts")
    assert str(user.id) not in stored[0]  # a keyed hash, not the id
    user.text("/start")
    user.wait_sent(6)
    user.press("English")
    user.wait_sent(7)
    user.press("I agree")
    assert "given once per Telegram account" in user.wait_sent(8)[-1].params["text"]
    assert ledger(bot_env, user) == []
    other = onboard(tg)  # everyone else still gets theirs
    assert "You have 3 free credits" in other.sent()[-1].params["text"]
