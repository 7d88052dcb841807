"""`speech-coach`: the operator's command line."""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from control.simulator.cli import app as simulate_app
from control.stack import Stack, StackError
from control.stack.isolated import local_settings
from control.stack.view import live_startup, slowest
from speech_coach.settings import Settings
from speech_coach.unreachable import ServerUnreachable
from warehouse.cli import app as warehouse_app

app = typer.Typer(help="Speech Coach platform commands.", no_args_is_help=True, add_completion=False)
stack_app = typer.Typer(
    help="Run the local stack: PostgreSQL, Kafka broker, ClickHouse and S3 on loopback.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
# This package sits above the runtimes, so their command groups join here directly.
app.add_typer(warehouse_app, name="warehouse")
app.add_typer(simulate_app, name="simulate")

# Wide enough for the status table when output is not a terminal (CI logs, pipes).
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)

STATE_STYLE = {
    "healthy": "green", "external": "green", "available": "green",
    "stopped": "dim", "unhealthy": "red", "unreachable": "red", "missing": "red",
}  # fmt: skip


def _fail(exc: StackError | ServerUnreachable) -> typer.Exit:
    # One line, for humans and for scripts grepping stderr.
    err_console.print(f"[bold red]error[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _interrupted() -> typer.Exit:
    # `up` has already stopped what it started when the interrupt reached it.
    err_console.print("interrupted: the parts this start had started are stopped again", highlight=False)
    return typer.Exit(code=130)


db_app = typer.Typer(help="The operational PostgreSQL database (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the operational database's migrations up to head (idempotent)."""
    from speech_coach.db import current_revision, ping, upgrade

    settings = Settings()
    try:
        ping(settings)
    except ServerUnreachable as exc:
        raise _fail(exc) from exc
    upgrade(settings)
    console.print(f"Operational database at revision {current_revision(settings)}.")


@db_app.command("rekey-pseudonyms")
def db_rekey_pseudonyms() -> None:
    """After rotating SC_PRIVACY__PSEUDONYM_KEY: recompute every learner's stored pseudonym with the new key."""
    from speech_coach.db.pseudonyms import rekey_pseudonyms
    from speech_coach.privacy import InsecurePseudonymKey

    try:
        changed = rekey_pseudonyms(Settings())
    except InsecurePseudonymKey as exc:
        err_console.print(f"[bold red]error[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from exc
    console.print(f"{changed} pseudonyms re-keyed; the next learners sync carries them to the warehouse.")


@app.command("run")
def run() -> None:
    """Bring up the platform on the local stack and print where everything is.

    Runtimes (Flink jobs, Dagster, the bot) join here as their issues land. The bot starts only when
    SC_BOT__TOKEN is set; otherwise this says that it is not started and why.
    """
    from speech_coach.kafka import ensure_topics

    settings = local_settings()
    stack = Stack(settings, platform=True)
    try:
        with live_startup(stack, console, "Starting the platform") as progress:
            result = stack.up(progress=progress)
        with console.status("creating Kafka topics..."):
            created = ensure_topics(settings)
    except StackError as exc:
        raise _fail(exc) from exc
    except KeyboardInterrupt as exc:
        raise _interrupted() from exc
    took = f" (slowest: {slowest(result)})" if result.part_seconds else ""
    console.print(f"Platform ready in {result.seconds:.1f} s{took}; {len(created)} Kafka topics created.")
    _print_status(stack)
    addresses = Table(title="Where things are", show_header=False)
    if settings.dagster.enabled:
        addresses.add_row("Dagster UI", stack.dagster_ui.address)
    if settings.answers.enabled:
        addresses.add_row("Answer job", f"{stack.answer_job.address}, log {stack.answer_job.log_file}")
    if settings.metrics.enabled:
        addresses.add_row("Metrics job", f"{stack.metrics_job.address}, log {stack.metrics_job.log_file}")
    addresses.add_row("Ingestion health", f"{stack.ingest.address}/readyz, metrics {stack.ingest.address}/metrics")
    addresses.add_row("Kafka bootstrap", settings.kafka_bootstrap)
    addresses.add_row("PostgreSQL", settings.postgres_url)
    addresses.add_row("ClickHouse (native)", settings.clickhouse_url)
    addresses.add_row("ClickHouse (HTTP)", f"http://{settings.stack.host}:{settings.clickhouse.http_port}/play")
    addresses.add_row("S3 endpoint", settings.s3_endpoint)
    if stack.bot.configured:
        addresses.add_row("Telegram bot (health)", stack.bot.address)
    addresses.add_row("Logs", str(settings.state_dir / "logs"))
    console.print(addresses)
    if not stack.bot.configured:
        console.print(
            "[yellow]Telegram bot: not started[/] - no bot token is configured. Get one from @BotFather, set "
            "SC_BOT__TOKEN in .env (or the environment) and run `make run` again. Meanwhile, `speech-coach simulate` "
            "sends simulated learners' voice answers through the platform.",
            highlight=False,
            soft_wrap=True,
        )
    console.print("Stop everything with [bold]make down[/].")


@stack_app.command("up")
def stack_up() -> None:
    """Start every local part (a no-op for parts already running) and wait until all are healthy."""
    stack = Stack(Settings())
    try:
        with live_startup(stack, console, "Starting the local stack") as progress:
            result = stack.up(progress=progress)
    except StackError as exc:
        raise _fail(exc) from exc
    except KeyboardInterrupt as exc:
        raise _interrupted() from exc
    if not result.started:
        console.print("The stack is already up; nothing was started.")
    else:
        console.print(f"Started {', '.join(result.started)} in {result.seconds:.1f} s.")
    _print_status(stack)


@stack_app.command("down")
def stack_down() -> None:
    """Stop the parts this stack started; data stays in the state directory."""
    stack = Stack(Settings())
    with console.status("stopping the local stack...") as status:
        stopped = stack.down(progress=lambda msg: status.update(msg))
    console.print(f"Stopped {', '.join(stopped)}." if stopped else "Nothing was running.")


@stack_app.command("status")
def stack_status() -> None:
    """Show each part: state, address, pid and data directory. Exits 1 if a part is not usable."""
    if not _print_status(Stack(Settings())):
        raise typer.Exit(code=1)


def _print_status(stack: Stack) -> bool:
    table = Table(title=f"Speech Coach local stack ({stack.settings.state_dir})")
    for column in ("part", "state", "address", "pid", "data dir", "detail"):
        table.add_column(column, overflow="fold")
    statuses = stack.status()
    for st in statuses:
        style = STATE_STYLE.get(st.state, "")
        table.add_row(st.name, f"[{style}]{st.state}[/]", st.address, str(st.pid or ""), st.data_dir, st.detail)
    console.print(table)
    kafka = next((st for st in statuses if st.name == "kafka"), None)
    if kafka is not None and kafka.ok:
        _print_pipeline(stack.settings)
    return all(st.ok for st in statuses)


def _print_pipeline(settings: Settings) -> None:
    from datetime import UTC, datetime

    from control.pipeline import pipeline_health, platform_consumers
    from speech_coach.contracts.topics import Topic
    from speech_coach.kafka import topic_name

    health = pipeline_health(settings, platform_consumers(settings))
    table = Table(title="Pipeline", show_header=False)
    if health.error:
        table.add_row("error", f"[red]{health.error}[/]")
    for name, lag in health.lag.items():
        table.add_row(f"{name} lag", f"{lag} records" if lag else "[green]caught up[/]")
    if health.last_feedback_at is None:
        table.add_row("last feedback", "none yet")
    else:
        ago = (datetime.now(UTC) - health.last_feedback_at).total_seconds()
        table.add_row("last feedback", f"{health.last_feedback_at:%Y-%m-%d %H:%M:%S} UTC ({ago:.0f} s ago)")
    style = "yellow" if health.dead_letters else "green"
    kept_in = topic_name(settings, Topic.DEAD_LETTERS)
    table.add_row("dead letters", f"[{style}]{health.dead_letters}[/] kept in {kept_in}")
    console.print(table)


@stack_app.command("logs")
def stack_logs(
    part: Annotated[
        str | None, typer.Argument(help=f"one of {', '.join(Stack.part_names())}; every part with a log if omitted")
    ] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="lines from the end of each log")] = 40,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new lines")] = False,
) -> None:
    """Print the end of the parts' logs (servers, Dagster, the Flink jobs, ingestion, the bot)."""
    stack = Stack(Settings())
    files = stack.log_files()
    if part is not None:
        if part not in files:
            err_console.print(f"[red]error[/] unknown part {part!r}; choose one of {', '.join(files)}")
            raise typer.Exit(code=2)
        files = {part: files[part]}
    else:
        # Parts that never ran (the bot without a token, a disabled job) have nothing to show.
        files = {name: path for name, path in files.items() if path.exists()}
        if not files:
            console.print(f"No logs yet in {stack.settings.state_dir / 'logs'}.")
    offsets = {}
    for name, path in files.items():
        console.rule(f"{name}: {path}")
        if not path.exists():
            console.print("(no log yet)")
            continue
        with path.open(errors="replace") as handle:
            for line in deque(handle, maxlen=lines):
                console.print(f"[dim]{name}[/] {line.rstrip()}", highlight=False, markup=False)
            offsets[name] = handle.tell()
    while follow:
        time.sleep(0.5)
        for name, path in files.items():
            if not path.exists():
                continue
            with path.open(errors="replace") as handle:
                handle.seek(offsets.get(name, 0))
                for line in handle:
                    console.print(f"{name} | {line.rstrip()}", highlight=False, markup=False)
                offsets[name] = handle.tell()


if __name__ == "__main__":
    app()
