"""`make run` from a fresh state directory to "ready": the whole platform (servers, ingestion, Dagster code server,
UI and daemon, both Flink jobs), as a newcomer starts it once installed. Each run uses its own state directory and
free ports, through the same `speech-coach run` command, and is stopped with `stack down`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from benchmarks.report import bar_chart, median, write_section
from control.stack.isolated import isolated_settings, settings_env

RUNS = 3
TARGET_S = 60.0
READY = re.compile(r"Platform ready in ([0-9.]+) s")
SLOWEST = re.compile(r"\(slowest: ([^)]*)\)")


def _cli(env: dict[str, str], cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control.cli", *args], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def run(console: Console) -> None:
    ready: list[float] = []
    wall: list[float] = []
    slowest = ""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SC_")} | {"COLUMNS": "160"}
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as progress:
        task = progress.add_task("make run, fresh state", total=RUNS)
        for i in range(RUNS):
            settings = isolated_settings(Path(tmp) / f"state-{i}")
            env = base | settings_env(settings) | {"SC_ENVIRONMENT": "local", "SC_BOT__TOKEN": ""}
            began = time.perf_counter()
            out = _cli(env, Path(tmp), "run")
            wall.append(time.perf_counter() - began)
            try:
                if out.returncode != 0 or not (found := READY.search(out.stdout)):
                    raise RuntimeError(f"`speech-coach run` failed: {(out.stderr or out.stdout)[-600:]}")
                ready.append(float(found.group(1)))
                if named := SLOWEST.search(out.stdout):
                    slowest = f"Slowest parts in the last run: {named.group(1)}."
            finally:
                _cli(env, Path(tmp), "stack", "down", timeout=180)
            progress.advance(task)
    verdict = "within" if median(ready) <= TARGET_S else "over"
    body = f"""
Command: `make bench` (or `python -m benchmarks platform`). {RUNS} runs of `speech-coach run` (what `make run` runs
once installed), each on an empty state directory and free ports, without a bot token: four servers, ingestion,
the Dagster code server, UI and daemon, the answer job and the metrics job, started side by side where they do not
depend on each other (`control/stack/manager.py`).

| measure | median | runs |
|---|---|---|
| "Platform ready in" (every part healthy) | **{median(ready):.1f} s** | {", ".join(f"{v:.1f}" for v in ready)} |
| command wall time (and the address tables) | {median(wall):.1f} s | {", ".join(f"{v:.1f}" for v in wall)} |

{bar_chart([(f"run {n + 1}", v) for n, v in enumerate(ready)], "s")}

Target: ready in at most {TARGET_S:.0f} s once installed: the median is **{verdict}** it. {slowest}

On two cores the start is bound by CPU: each Flink job needs about 16 s of it (JVM about 10 s, the Python driver
about 6), the Dagster code server about 15 s, the UI and the daemon 6-7 s each. The runs share the machine with
whatever else runs, so compare medians within one run of the benchmark.
"""
    write_section("platform", "make run: fresh clone to ready", body)
    console.print(body)
