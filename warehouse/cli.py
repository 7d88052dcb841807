"""`speech-coach warehouse ...`: migrations and ingestion from the command line."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from speech_coach.settings import Settings
from speech_coach.unreachable import ServerUnreachable

app = typer.Typer(help="The ClickHouse warehouse: migrations and ingestion from Kafka.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


# dbt commands that need no warehouse connection: no reachability check for these.
_OFFLINE_DBT = {"parse", "ls", "list", "deps", "clean", "init", "--version", "--help", "-h"}


def _reachable(settings: Settings) -> None:
    """Exit with one line naming the server and the fix when ClickHouse does not answer (not a traceback)."""
    from warehouse.client import ping

    try:
        ping(settings)
    except ServerUnreachable as exc:
        err_console.print(f"[bold red]error[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply pending ClickHouse migrations (idempotent)."""
    from warehouse.client import connect
    from warehouse.migrate import MigrationError, migrate

    settings = Settings()
    _reachable(settings)
    try:
        ran = migrate(connect(settings))
    except MigrationError as exc:
        console.print(f"[red]error[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"Applied {len(ran)} migration(s): {', '.join(m.path.name for m in ran) or 'none pending'}.")


@app.command("check-schema")
def check_schema_cmd() -> None:
    """Check that the migrated raw tables hold every contract field; print what a new migration must add."""
    from warehouse.client import connect
    from warehouse.schema import problems, read_schema

    found = problems(read_schema(connect(Settings())))
    for line in found:
        console.print(line, markup=False, highlight=False)
    if found:
        raise typer.Exit(1)
    console.print("The raw tables hold every field of the event contracts.")


@app.command("generate")
def generate_cmd(
    answers: int = typer.Option(1_000_000, help="how many answers to generate"),
    seed: int = typer.Option(7, help="random seed; the same seed gives the same data"),
) -> None:
    """Fill the raw tables with realistic synthetic learners, answers, feedback and metrics."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from warehouse.client import connect
    from warehouse.generate import generate
    from warehouse.migrate import migrate

    settings = Settings()
    client = connect(settings)
    migrate(client)
    columns = [*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, BarColumn(bar_width=None), console=console) as progress:
        task = progress.add_task("generating answers", total=answers)
        counts = generate(client, settings, answers, seed=seed, progress=lambda n: progress.advance(task, n))
    console.print(f"{counts.answers:,} answers from {counts.learners:,} learners on {counts.questions} questions.")


@app.command("dbt", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def dbt_cmd(ctx: typer.Context) -> None:
    """Run dbt on the configured warehouse, e.g. `speech-coach warehouse dbt build`."""
    from warehouse.dbt import run_dbt

    settings = Settings()
    args = ctx.args or ["build"]
    if args[0] not in _OFFLINE_DBT:
        _reachable(settings)
    result = run_dbt(settings, args)
    console.print(result.stdout, markup=False, highlight=False)
    if result.returncode:
        console.print(result.stderr, markup=False, highlight=False)
        raise typer.Exit(result.returncode)


@app.command("ingest")
def ingest_cmd(
    follow: bool = typer.Option(False, "--follow", help="keep ingesting until interrupted"),
    idle: float = typer.Option(5.0, help="stop after this many seconds without new records"),
) -> None:
    """Ingest the Kafka topics into the raw tables (`--follow`: as a service with health and metrics)."""
    from speech_coach.privacy import InsecurePseudonymKey, require_private_key
    from warehouse.ingest import Ingestor

    try:
        require_private_key(Settings(), "ingestion")
    except InsecurePseudonymKey as exc:
        err_console.print(f"[bold red]error[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from exc
    if follow:
        from speech_coach.logging import configure_logging
        from warehouse.service import serve

        settings = Settings()
        configure_logging(settings.log.level, settings.log.json_output, settings.secret_values())
        serve(settings)
        return

    with console.status("ingesting..."), Ingestor(Settings()) as ingestor:
        stats = ingestor.run(until_idle_s=idle)
    table = Table(title=f"Ingested {stats.messages} records in {stats.batches} batches")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in sorted(stats.rows.items()):
        table.add_row(name, str(n))
    console.print(table)
    console.print(f"dead letters: {stats.dead_letters}, learners erased: {stats.deleted_learners}")
