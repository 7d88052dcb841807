"""Shared helpers: medians and percentiles, text bar charts, and section replacement in docs/benchmarks.md."""

from __future__ import annotations

import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"

HEADER = """# Benchmarks

Written by `make bench` (`python -m benchmarks [name ...]`); each section is replaced when its benchmark runs
again. These machines are noisy: figures are medians (and p95 where latency matters) over repeated runs, and
comparisons are ratios within one run.
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values)


def bar_chart(rows: list[tuple[str, float]], unit: str, width: int = 40) -> str:
    """A horizontal bar chart in plain text, readable in any Markdown viewer."""
    top = max((v for _, v in rows), default=0) or 1
    label_w = max(len(label) for label, _ in rows)
    lines = [f"{label.ljust(label_w)} {'█' * max(1, round(width * v / top))} {v:,.2f} {unit}" for label, v in rows]
    return "```text\n" + "\n".join(lines) + "\n```"


def machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, title: str, body: str, *, after: str | None = None) -> None:
    """Replace the section `name`; a new one goes right after section `after` when that exists, else at the end."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = f"{begin}\n## {title}\n\n_Measured {stamp} on {machine()}._\n\n{body.strip()}\n{end}"
    text = DOC.read_text() if DOC.exists() else HEADER
    if begin in text and end in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = head + section + tail
    elif after and (anchor := f"<!-- END {after} -->") in text:
        head, _, tail = text.partition(anchor)
        rest = tail.lstrip("\n")
        text = head + anchor + "\n\n" + section + ("\n\n" + rest if rest else "\n")
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)
