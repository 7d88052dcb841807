"""`speech-coach simulate`: watch the platform do its job without a bot token."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from speech_coach.settings import Settings

app = typer.Typer(help="Simulated learners answer by voice through the whole platform.", invoke_without_command=True)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def simulate_cmd(
    learners: int = typer.Option(3, min=1, max=50, help="simulated learners (one per practice track in turn)"),
    answers: int = typer.Option(3, min=1, max=20, help="voice answers per learner"),
    seed: int = typer.Option(7, help="random seed: the same seed gives the same learners, questions and speech"),
    out: Annotated[
        Path | None, typer.Option(help="where the chart and the export copy go; default <state dir>/simulation")
    ] = None,
    timeout: float = typer.Option(600.0, help="longest wait for all feedback, in seconds"),
) -> None:
    """Bring up the platform (if needed), push simulated voice answers through it, and show what came out."""
    from control.simulator.run import SimulationError, simulate
    from control.stack import Stack, StackError
    from control.stack.isolated import local_settings
    from control.stack.view import live_startup

    settings = local_settings()
    out = out or settings.state_dir / "simulation"
    stack = Stack(settings, platform=True)
    try:
        with live_startup(stack, console, "Starting the platform") as started:
            stack.up(progress=started)
    except StackError as exc:
        err_console.print(f"[bold red]error[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc

    # The bar takes what the other columns leave, so the rows fit an 80-column terminal.
    columns = (SpinnerColumn(), TextColumn("{task.description:<23}"), BarColumn(bar_width=None),
               MofNCompleteColumn(), TimeElapsedColumn())  # fmt: skip
    total = learners * answers
    # Bound to this stdout now: the Dagster steps run with stdout sent to their log file, the bars must not follow.
    with Progress(*columns, console=Console(file=sys.stdout)) as progress:
        tasks = {
            "published": progress.add_task("voice answers published", total=total),
            "feedback": progress.add_task("feedback received", total=total),
            "warehouse": progress.add_task("rows in the warehouse", total=1),
            "models and export": progress.add_task("dbt models and export", total=1),
        }

        def step(stage: str, done: int, of: int) -> None:
            progress.update(tasks[stage], completed=done, total=of)

        try:
            sim = simulate(settings, learners=learners, answers_per_learner=answers, seed=seed, out_dir=out,
                           step=step, feedback_timeout_s=timeout)  # fmt: skip
        except SimulationError as exc:
            progress.stop()
            err_console.print(f"[bold red]error[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from exc

    missing = [a for a in sim.answers if a.event.answer_id not in sim.feedback]
    if missing:
        console.print(
            f"[red]{len(missing)} of {len(sim.answers)} answers got no feedback within {timeout:.0f} s.[/] "
            "Check the answer job: `speech-coach stack status` and `speech-coach stack logs answer-job`."
        )
        raise typer.Exit(1)
    _show_feedback(sim)
    _show_scores(sim)
    _show_summary(sim, settings)


def _show_feedback(sim) -> None:  # type: ignore[no-untyped-def]
    first = next(a for a in sim.answers if sim.feedback[a.event.answer_id].status == "ok")
    result = sim.feedback[first.event.answer_id]
    rubric = Table(show_header=True, box=None)
    rubric.add_column("criterion")
    rubric.add_column("score", justify="right")
    for r in result.rubric:
        rubric.add_row(r.criterion, f"{r.score:g} / {r.max_score:g}")
    metrics = result.metrics
    facts = (
        f"{metrics.words_per_minute:.0f} words/min · {metrics.pause_count} pauses · "
        f"lexical diversity (MATTR) {metrics.lexical_diversity:.2f}"
        if metrics
        else ""
    )
    body = Group(
        f"[bold]Question[/] ({first.question.task_type.value}): {first.question.prompt}",
        f"[bold]Transcript[/]: {result.transcript}",
        rubric,
        facts,
        "[bold]Strengths[/]: " + "; ".join(result.strengths),
        "[bold]Suggestions[/]: " + "; ".join(result.suggestions),
        f"[bold]Improved example[/]: {result.improved_answer}",
    )
    console.print(Panel(body, title=f"Feedback for learner {first.pseudonym}", expand=False))


def _short(pseudonym: str) -> str:
    # Pseudonyms are 25 characters; their first 8 tell a handful of learners apart, and the chart must fit 80 columns.
    return pseudonym[:9] + "…" if len(pseudonym) > 10 else pseudonym


def score_chart(sim, width: int) -> Table:  # type: ignore[no-untyped-def]
    """Scores per answer as bars, learner by learner: the chart people would rather see than numbers. The bars get
    the width the labels leave (at most 30 cells), so no row wraps on a terminal `width` columns wide."""
    rows = []
    for a in sim.answers:
        result = sim.feedback[a.event.answer_id]
        scored = result.status == "ok" and result.overall_score is not None and result.rubric
        share = result.overall_score / max(r.max_score for r in result.rubric) if scored else None
        rows.append((_short(a.pseudonym), a.question.id, share, result))
    labels = max((len(r[0]) for r in rows), default=0) + max((len(r[1]) for r in rows), default=0)
    scores = max((len(f"{r[3].overall_score:g}") for r in rows if r[2] is not None), default=0)
    bar_cells = max(5, min(30, width - labels - scores - 7))  # 7: the padding between and around the columns
    table = Table(title="Scores of the simulated learners (share of each task's scale)", box=None, padding=(0, 1),
                  pad_edge=False)  # fmt: skip
    table.add_column("learner", no_wrap=True)
    table.add_column("answer", no_wrap=True, overflow="ellipsis")
    table.add_column("score", no_wrap=True, overflow="ellipsis")
    for learner, question, share, result in rows:
        if share is None:
            table.add_row(learner, question, f"[yellow]rejected: {result.rejection_reason}[/]")
        else:
            table.add_row(learner, question, f"[green]{'█' * round(share * bar_cells)}[/] {result.overall_score:g}")
    return table


def _show_scores(sim) -> None:  # type: ignore[no-untyped-def]
    console.print(score_chart(sim, console.width))


def _show_summary(sim, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    ok = sum(1 for r in sim.feedback.values() if r.status == "ok")
    summary = Table(title="What the platform did", show_header=False)
    summary.add_column()
    summary.add_column(overflow="fold")  # paths and S3 locations are copied by readers: never cut them
    summary.add_row("answers", f"{len(sim.answers)} ({ok} scored, {len(sim.answers) - ok} rejected)")
    summary.add_row("warehouse rows", ", ".join(f"{t} {n}" for t, n in sim.warehouse_rows.items()))
    summary.add_row("dbt models built", str(sim.dbt_models))
    summary.add_row("research export", sim.export_prefix or "not built")
    summary.add_row("audio", f"s3://{settings.s3.audio_bucket}/audio/ (content-addressed)")
    if sim.dagster_runs:
        ui = f"http://{settings.stack.host}:{settings.dagster.port}"
        summary.add_row("Dagster runs", f"{len(sim.dagster_runs)} in the Dagster UI, {ui}/runs (log {sim.dagster_log})")
    console.print(summary)
    files = Table(title="Files written", show_header=False)
    files.add_column(overflow="fold")
    for path in sim.files:
        files.add_row(str(path))
    console.print(files)
