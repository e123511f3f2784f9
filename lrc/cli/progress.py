"""Progress of long commands on stderr (rich): a line per stage, with a bar where the work is counted.

Shown only where stderr is a terminal (rich's detection: ``TTY_COMPATIBLE=1`` forces it), so that
logs and scripts get the result and the errors alone; silent with ``--quiet`` and with ``--json``
(whose stdout is for scripts; stderr stays clean too).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress on stderr.")]


class Stage:
    """One line of progress: ``update(completed, total=None, **metrics)``; nothing when quiet."""

    def __init__(self, bar: Any = None, task: Any = None, total: float | None = None) -> None:
        self._bar, self._task, self._total = bar, task, total

    def update(self, completed: float, total: float | None = None, **metrics: float | str) -> None:
        """Show ``completed`` (of ``total``) and the metrics."""
        if self._bar is None:
            return
        self._total = total if total is not None else self._total
        shown = " ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
        self._bar.update(self._task, completed=completed, total=self._total, metrics=shown)

    def done(self) -> None:
        """Mark the stage complete (a line without a total stops spinning)."""
        if self._bar is not None:
            total = self._total or 1
            self._bar.update(self._task, completed=total, total=total)


class Feedback:
    """The stages of one command."""

    def __init__(self, bar: Any = None) -> None:
        self._bar = bar

    def stage(self, description: str, total: float | None = None) -> Stage:
        """Start a line (the previous ones stay as they are)."""
        if self._bar is None:
            return Stage()
        return Stage(self._bar, self._bar.add_task(description, total=total, metrics=""), total)


@contextmanager
def feedback(quiet: bool) -> Iterator[Feedback]:
    """Progress lines on stderr for the block, or none when ``quiet`` or stderr is no terminal."""
    from rich.console import Console

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        yield Feedback()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        SpinnerColumn(finished_text="✓"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[metrics]}"),
    )
    with Progress(*columns, console=console) as bar:
        yield Feedback(bar)
