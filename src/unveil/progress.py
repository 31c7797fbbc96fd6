"""Rich progress bars for long work, written to stderr so stdout stays clean for results."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

stderr_console = Console(stderr=True)
_silenced = 0  # > 0 inside silenced(): bars deeper in the call stack stay hidden too


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """No progress bar inside this block, however deep the call that would show one (e.g. a quiet training run
    whose method detects landmarks while it builds its datasets)."""
    global _silenced
    _silenced += 1
    try:
        yield
    finally:
        _silenced -= 1


class DeadlineColumn(ProgressColumn):
    """The time left: the bar's own estimate, or less where a deadline (``time.monotonic()`` seconds) stops the work
    first (a time-limited training run whose epochs would take days)."""

    def __init__(self, deadline: float) -> None:
        super().__init__()
        self.deadline = deadline

    def render(self, task: Task) -> Text:
        left = max(0.0, self.deadline - time.monotonic())
        estimate = task.time_remaining
        if estimate is not None and estimate < left:
            return Text(str(timedelta(seconds=round(estimate))), style="progress.remaining")
        return Text(f"{timedelta(seconds=round(left))} (time limit)", style="progress.remaining")


@contextlib.contextmanager
def progress_bar(total: float, description: str, enabled: bool = True, deadline: float | None = None
                 ) -> Iterator[Callable[[float], None]]:
    """Yield ``advance(n)``; shows a bar with count, elapsed time and ETA when ``enabled`` (else silent); with a
    ``deadline`` (``time.monotonic()`` seconds) the ETA is at most the time left until it."""
    if not enabled or _silenced:
        yield lambda n: None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn() if deadline is None else DeadlineColumn(deadline))
    with Progress(*columns, console=stderr_console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
