"""``evalsuite score ...``: score generations made anywhere (a JSONL file in, metrics out).

The main CLI mounts ``score_app`` as ``evalsuite score``; ``python -m evalsuite.scoring.cli
math ...`` runs it alone. Bad input prints one line naming the file and line, exit code 2.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from evalsuite.scoring.errors import ScoringError
from evalsuite.scoring.pool import PoolError, default_workers

if TYPE_CHECKING:
    from evalsuite.scoring.math.grade import Mode

score_app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Score generations from anywhere.",
)
err = Console(stderr=True, soft_wrap=True)


@score_app.callback()
def _score() -> None:
    """Score generations from anywhere."""


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A transient bar on stderr when it is a terminal (and not --json); else nothing.

    Redrawn from the progress callback, not by rich's refresh thread: without threads the
    grading pool can fork its workers, which start faster than forkserver ones.
    """
    if not enabled:
        yield None
        return
    columns = (TextColumn("grading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True, auto_refresh=False) as bar:
        task = bar.add_task("grading", total=None)
        last = 0.0

        def advance(done: int, total: int) -> None:
            nonlocal last
            bar.update(task, completed=done, total=total)
            if time.monotonic() - last > 0.1 or done == total:
                last = time.monotonic()
                bar.refresh()

        yield advance


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


@score_app.command("math")
def score_math(
    predictions: Annotated[
        Path,
        typer.Option(
            help="JSONL: 'prediction' (the full response) and 'gold' (a final answer) or "
            "'solution' (with \\boxed{}); optional 'id', 'subject'/'type', 'level'."
        ),
    ],
    mode: Annotated[
        str, typer.Option(help="paper (the RaSA metric), robust (math-verify), or both.")
    ] = "both",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    workers: Annotated[
        int | None, typer.Option(help="Grading processes (default: one per core).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds per comparison before its worker is killed.")
    ] = 5.0,
) -> None:
    """Grade MATH responses: paper-mode accuracy (acc) and robust accuracy (acc_robust)."""
    from evalsuite.scoring.math.grade import MODES, grade_math
    from evalsuite.scoring.math.items import read_predictions

    try:
        if mode not in MODES:
            raise ScoringError(f"--mode {mode!r}: use one of {', '.join(MODES)}")
        if workers is not None and workers < 1:
            raise ScoringError(f"--workers {workers}: use 1 or more")
        if not timeout > 0:
            raise ScoringError(f"--timeout {timeout:g}: use a positive number of seconds")
        items = read_predictions(predictions)
        with _progress(enabled=not as_json and err.is_terminal) as advance:
            report = grade_math(
                items,
                mode=cast("Mode", mode),
                workers=workers or default_workers(),
                timeout=timeout,
                on_progress=advance,
            )
    except ScoringError as e:  # the input: fix it and run again
        err.print(f"error: {e}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except PoolError as e:  # the environment (e.g. a parser dependency)
        err.print(f"error: {e}", markup=False, highlight=False)
        raise typer.Exit(1) from None

    if as_json:
        typer.echo(json.dumps(report.to_json()))
        return
    console = Console()
    summary = Table(title=f"MATH: {predictions} ({report.n} items, mode {mode})")
    for column in ("acc (paper)", "acc_robust", *report.status_counts()):
        summary.add_column(column, justify="right")
    summary.add_row(
        _percent(report.acc),
        _percent(report.acc_robust),
        *(str(v) for v in report.status_counts().values()),
    )
    console.print(summary)
    keys: tuple[Literal["subject", "level"], ...] = ("subject", "level")
    for key in keys:
        groups = report.breakdown(key)
        if not groups:
            continue
        table = Table(title=f"by {key}")
        for column in (key, "n", "acc (paper)", "acc_robust"):
            table.add_column(column, justify="left" if column == key else "right")
        for name, row in groups.items():
            table.add_row(name, str(row["n"]), _percent(row["acc"]), _percent(row["acc_robust"]))
        console.print(table)


if __name__ == "__main__":
    score_app()
