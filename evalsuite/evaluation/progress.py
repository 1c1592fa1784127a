"""Progress display for long loops: a rich bar on a terminal, silence otherwise."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


@contextmanager
def byte_progress(label: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(nbytes)``; shows a transfer bar when ``enabled``."""
    if not enabled:
        yield lambda n: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


@contextmanager
def task_progress(enabled: bool) -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """Yield ``start(label, total) -> advance(n)``: one bar per task, kept on screen."""
    if not enabled:
        yield lambda label, total: lambda n: None
        return
    from rich.progress import MofNCompleteColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns) as bar:

        def start(label: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(label, total=total)
            return lambda n: bar.advance(task, n)

        yield start
