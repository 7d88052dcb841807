"""`python -m benchmarks [name ...]`: run the named benchmarks (all by default) and update docs/benchmarks.md."""

from __future__ import annotations

import importlib
import sys

from rich.console import Console

BENCHMARKS = ["stack", "warehouse", "lexical", "answers", "metrics_job"]


def main(argv: list[str]) -> int:
    console = Console()
    names = argv or BENCHMARKS
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        console.print(f"[red]unknown benchmark(s): {', '.join(unknown)}[/]; choose from {', '.join(BENCHMARKS)}")
        return 2
    for name in names:
        console.rule(f"benchmark: {name}")
        importlib.import_module(f"benchmarks.{name}").run(console)
    console.print("Results written to docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
