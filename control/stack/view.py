"""The live view of `up` in a terminal: which parts are ready, which are still waited for, and for how long."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from control.stack.manager import PartProgress, Progress, Stack, UpResult

_STYLE = {
    "waiting": "dim", "starting": "yellow", "healthy": "green", "running": "green", "external": "green",
    "failed": "bold red", "cancelled": "dim",
}  # fmt: skip
_MARK = {"healthy": "✓", "running": "✓", "external": "✓", "failed": "✗", "cancelled": "-", "waiting": "·"}


class StartupView:
    """A rich renderable drawn anew on every refresh, so the seconds tick while `Stack.up` runs in another thread."""

    def __init__(self, stack: Stack, what: str) -> None:
        self.stack = stack
        self.what = what
        self.began = time.monotonic()
        self._spinners: dict[str, Spinner] = {}

    def _elapsed(self, part: PartProgress, now: float) -> str:
        if part.seconds is not None:
            return f"{part.seconds:.1f} s"
        return f"{now - part.since:.0f} s"

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        now = time.monotonic()
        board = list(self.stack.board.values())
        pending = [p.name for p in board if not p.done]
        ready = sum(1 for p in board if p.state in {"healthy", "running", "external"})
        yield Text.assemble(
            (f"{self.what}: ", "bold"),
            f"{ready} of {len(board)} ready",
            (f"; waiting for {', '.join(pending)}" if pending else "", "yellow"),
            f" ({now - self.began:.0f} s)",
        )
        # Names, states and seconds keep their width; the detail (an address, what a check still waits for)
        # gets what is left of the line and is cut, never wrapped.
        name_width = max((len(p.name) for p in board), default=0)
        detail_width = max(10, options.max_width - (1 + name_width + 9 + 6) - 2 * 4)
        table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False, expand=False)
        table.add_column(width=1, no_wrap=True)
        table.add_column(width=name_width, no_wrap=True)
        table.add_column(width=9, no_wrap=True)
        table.add_column(width=6, justify="right", no_wrap=True)
        table.add_column(max_width=detail_width, no_wrap=True)
        for part in board:
            style = _STYLE.get(part.state, "")
            mark: RenderableType
            if part.state == "starting":
                mark = self._spinners.setdefault(part.name, Spinner("dots", style="yellow"))
            else:
                mark = Text(_MARK.get(part.state, " "), style=style)
            waited = "" if part.state == "waiting" and not part.detail else self._elapsed(part, now)
            detail = Text(part.detail, style="dim")
            detail.truncate(detail_width, overflow="ellipsis")
            table.add_row(mark, part.name, Text(part.state, style=style), waited, detail)
        yield table


@contextmanager
def live_startup(stack: Stack, console: Console, what: str = "Starting") -> Iterator[Progress]:
    """Show the start-up live on a terminal (cleared once done). Yields the `progress` callback for `Stack.up`: a
    line per step where there is no terminal to redraw (CI logs, pipes), a no-op where the live view shows it."""
    view = StartupView(stack, what)
    if not console.is_terminal:

        def line(message: str) -> None:
            console.print(f"[{time.monotonic() - view.began:5.1f} s] {message}", highlight=False, markup=False)

        yield line
        return
    with Live(view, console=console, refresh_per_second=4, transient=True):
        yield lambda _message: None


def slowest(result: UpResult, count: int = 3) -> str:
    """The parts that took longest, e.g. `dagster-ui 24.1 s, answer-job 19.0 s`: where a start's time went."""
    ranked = sorted(result.part_seconds.items(), key=lambda item: -item[1])[:count]
    return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in ranked)
