"""``evalsuite score humaneval-plus``: pass@k of HumanEval+ samples, every program sandboxed.

``score_humaneval_plus_command`` does the work (options already parsed, prints, returns the
exit code: 0 scored, 2 bad input, 1 the sandbox could not run); ``register`` mounts it on
a Typer app as the ``humaneval-plus`` command. Bad input is one line on stderr, no traceback.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from evalsuite.scoring.code.evalplus import DEFAULT_MIN_TIME_LIMIT
from evalsuite.scoring.errors import ScoringError

err = Console(stderr=True, soft_wrap=True)
STATUSES = ("pass", "fail", "error", "timeout")


@contextmanager
def _bars(enabled: bool) -> Iterator[tuple[Callable[[int, int], None], Callable[[int, int], None]]]:
    """Two transient bars on stderr (answers, then samples) when it is a terminal."""
    if not enabled:
        yield (lambda done, total: None), (lambda done, total: None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=err, transient=True) as bar:
        truth = bar.add_task("expected outputs (once per machine)", total=None, visible=False)
        run = bar.add_task("running samples", total=None)

        def on_truth(done: int, total: int) -> None:
            bar.update(truth, completed=done, total=total, visible=done < total)

        def on_run(done: int, total: int) -> None:
            bar.update(run, completed=done, total=total)

        yield on_truth, on_run


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _summary(report: Any, samples: Path) -> None:
    console = Console()
    data = report.to_json()
    title = f"HumanEval+ {report.mode} mode: {samples} ({data['n_tasks']} tasks, "
    table = Table(title=title + f"{data['n_samples']} samples)")
    for column in ("", "pass@1", "pass@10"):
        table.add_column(column, justify="right" if column else "left")
    headline = "plus (base + extra)" if report.mode == "evalplus" else "paper (combined check)"
    table.add_row(headline, _percent(data["pass@1"]), _percent(data["pass@10"]))
    table.add_row("base only", _percent(data["base"]["pass@1"]), _percent(data["base"]["pass@10"]))
    console.print(table)
    counts = Counter(s.status for s in report.samples)
    console.print("samples: " + ", ".join(f"{s} {counts.get(s, 0)}" for s in STATUSES))
    iso = report.isolation
    console.print(
        f"sandbox: {iso.get('processes')}; network {iso.get('network')}; "
        f"files {iso.get('filesystem')}; {iso.get('uid')}"
    )
    for note in data["notes"]:
        console.print(f"note: {note}")
    console.print(f"{report.seconds:.1f} s")


def score_humaneval_plus_command(
    samples: Path,
    *,
    dataset: Path | None = None,
    mode: str = "evalplus",
    as_json: bool = False,
    workers: int | None = None,
    min_time_limit: float = DEFAULT_MIN_TIME_LIMIT,
    quirks: bool = False,
    completion_style: str = "protocol",
    isolation: str = "auto",
    dedup: bool = True,
) -> int:
    """Score, print (JSON or a summary), and return the process exit code."""
    from evalsuite.scoring.code.score import MODES, score_humaneval_plus
    from evalsuite.scoring.sandbox.box import SandboxError

    try:
        if mode not in MODES:
            raise ScoringError(f"--mode {mode!r}: use one of {', '.join(MODES)}")
        if workers is not None and workers < 1:
            raise ScoringError(f"--workers {workers}: use 1 or more")
        if not min_time_limit > 0:
            raise ScoringError(f"--min-time-limit {min_time_limit:g}: use a positive number")
        if completion_style not in ("protocol", "evalplus"):
            raise ScoringError(f"--completion-style {completion_style!r}: protocol or evalplus")
        if isolation not in ("auto", "namespaces", "basic"):
            raise ScoringError(f"--isolation {isolation!r}: auto, namespaces or basic")
        with _bars(enabled=not as_json and err.is_terminal) as (on_truth, on_run):
            report = score_humaneval_plus(
                samples,
                dataset=dataset,
                mode=cast(Any, mode),
                workers=workers,
                min_time_limit=min_time_limit,
                quirks=quirks,
                isolation=isolation,
                completion_style=cast(Any, completion_style),
                on_progress=on_run,
                on_truth_progress=on_truth,
                dedup=dedup,
            )
    except ScoringError as e:  # the input: fix it and run again
        err.print(f"error: {e}", markup=False, highlight=False)
        return 2
    except SandboxError as e:  # the environment
        err.print(f"error: {e}", markup=False, highlight=False)
        return 1
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        _summary(report, samples)
    return 0


def register(score_app: typer.Typer) -> None:
    """Add ``humaneval-plus`` to ``evalsuite score``."""

    @score_app.command("humaneval-plus")
    def humaneval_plus(
        samples: Annotated[
            Path,
            typer.Option(
                help="EvalPlus samples JSONL ('task_id' + 'solution' or 'completion') or "
                "bigcode generations JSON (a list of program lists, in problem order)."
            ),
        ],
        dataset: Annotated[
            Path | None,
            typer.Option(help="HumanEvalPlus.jsonl[.gz] (v0.1.10); default: EvalPlus' cache."),
        ] = None,
        mode: Annotated[
            str, typer.Option(help="evalplus (evalplus.evaluate) or paper (bigcode, RaSA).")
        ] = "evalplus",
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        workers: Annotated[
            int | None, typer.Option(help="Programs run at once (default: one per core).")
        ] = None,
        min_time_limit: Annotated[
            float, typer.Option(help="EvalPlus mode: least seconds per input.")
        ] = DEFAULT_MIN_TIME_LIMIT,
        quirks: Annotated[
            bool,
            typer.Option(
                help="HumanEval/32 as the reference tools judge it: EvalPlus 0.3.1's bug, "
                "or in paper mode the HF test's (every find_zero sample fails)."
            ),
        ] = False,
        completion_style: Annotated[
            str,
            typer.Option(help="'completion' rows: protocol (cut, rstripped prompt) or evalplus."),
        ] = "protocol",
        isolation: Annotated[
            str, typer.Option(help="auto, namespaces (require them) or basic.")
        ] = "auto",
        dedup: Annotated[
            bool, typer.Option(help="Run a program repeated for the same task only once.")
        ] = True,
    ) -> None:
        """Score HumanEval+ samples: pass@1 and pass@10, base and plus."""
        code = score_humaneval_plus_command(
            samples,
            dataset=dataset,
            mode=mode,
            as_json=as_json,
            workers=workers,
            min_time_limit=min_time_limit,
            quirks=quirks,
            completion_style=completion_style,
            isolation=isolation,
            dedup=dedup,
        )
        if code:
            raise typer.Exit(code)
