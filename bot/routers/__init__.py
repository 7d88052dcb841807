"""One router per area; `all_routers()` lists them in the order the dispatcher tries them."""

from __future__ import annotations

from aiogram import Router


def all_routers() -> list[Router]:
    from bot.routers import admin, answers, fallback, payments, practice, progress, settings, start

    # Admin first (its filter hides it from everyone else); the fallback last.
    return [admin.router, start.router, practice.router, answers.router, progress.router, settings.router,
            payments.router, fallback.router]  # fmt: skip
