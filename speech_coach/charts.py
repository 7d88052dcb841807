"""Progress charts for the bot's /stats and the simulator: score, lexical diversity (last 10 answers, per day,
per month), speaking rate and the most-used words, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _means(rows: list[dict[str, Any]], fmt: str) -> tuple[list[str], list[float]]:
    groups: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        if row["lexical_diversity"] is not None:
            groups[row["received_at"].strftime(fmt)].append(row["lexical_diversity"])
    labels = sorted(groups)
    return labels, [sum(groups[k]) / len(groups[k]) for k in labels]


def top_words(rows: list[dict[str, Any]], n: int = 10) -> list[tuple[str, int]]:
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update(row["word_counts"] or {})
    return counts.most_common(n)


def stats_png(rows: list[dict[str, Any]], labels: dict[str, str]) -> bytes:
    """rows: delivered answers, oldest first. labels: translated titles."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), dpi=80)
    n = list(range(1, len(rows) + 1))
    ax = axes[0][0]
    ax.plot(n, [r["overall_score"] if r["overall_score"] is not None else float("nan") for r in rows], marker="o")
    ax.set_title(labels["score"])
    ax.set_xlabel(labels["answer"])
    last = rows[-10:]
    ax = axes[0][1]
    ax.plot(range(1, len(last) + 1), [r["lexical_diversity"] or 0 for r in last], marker="o", color="tab:green")
    ax.set_title(labels["ld_last10"])
    ax.set_ylim(0, 1)
    for ax, fmt, key in ((axes[0][2], "%Y-%m-%d", "ld_day"), (axes[1][0], "%Y-%m", "ld_month")):
        x, y = _means(rows, fmt)
        ax.bar(x, y, color="tab:green")
        ax.set_title(labels[key])
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax = axes[1][1]
    ax.plot(n, [r["words_per_minute"] or 0 for r in rows], marker="o", color="tab:orange")
    ax.set_title(labels["wpm"])
    ax.set_xlabel(labels["answer"])
    ax = axes[1][2]
    words = top_words(rows)
    ax.barh([w for w, _ in reversed(words)], [c for _, c in reversed(words)], color="tab:purple")
    ax.set_title(labels["words"])
    fig.suptitle(labels["title"].format(date=datetime.now().strftime("%Y-%m-%d")))
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()
