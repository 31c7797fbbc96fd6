"""Rich progress bars for long work, written to stderr so stdout stays clean for results."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

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


@contextlib.contextmanager
def progress_bar(total: float, description: str, enabled: bool = True) -> Iterator[Callable[[float], None]]:
    """Yield ``advance(n)``; shows a bar with count, elapsed time and ETA when ``enabled`` (else silent)."""
    if not enabled or _silenced:
        yield lambda n: None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=stderr_console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)
