"""`python -m benchmarks [name ...]`: run the named benchmarks (all but the soak by default) and update
docs/benchmarks.md. `python -m benchmarks load` (`make soak`) is the longer load test."""

from __future__ import annotations

import importlib
import sys

from rich.console import Console

BENCHMARKS = ["stack", "platform", "warehouse", "lexical", "answers", "metrics_job", "metrics_floor"]
SOAK = ["load"]  # minutes of simulated learners: only when named


def main(argv: list[str]) -> int:
    console = Console()
    names = argv or BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS) - set(SOAK))
    if unknown:
        known = ", ".join(BENCHMARKS + SOAK)
        console.print(f"[red]unknown benchmark(s): {', '.join(unknown)}[/]; choose from {known}")
        return 2
    for name in names:
        console.rule(f"benchmark: {name}")
        importlib.import_module(f"benchmarks.{name}").run(console)
    console.print("Results written to docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
