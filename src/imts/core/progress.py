"""Progress reporting that domain code can use without knowing who is watching.

Domain functions take a ``Progress`` and call ``progress.task(...)``; the CLI passes a rich-backed
implementation with bars and ETA, tests and workers pass ``NullProgress`` (or, later, one that writes
to the job store so the console can show it live).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol


class Task(Protocol):
    def advance(self, n: float = 1, **fields: Any) -> None:
        """Mark ``n`` more units done; ``fields`` are shown next to the bar (loss=..., tok/s=...)."""


class Progress(Protocol):
    def task(self, description: str, total: float | None) -> Any:
        """A context manager yielding a ``Task`` for one long step."""

    def log(self, message: str) -> None:
        """A line of narrative (a step finished, a count)."""


class _NullTask:
    def advance(self, n: float = 1, **fields: Any) -> None:
        return None


class NullProgress:
    """Reports nothing."""

    @contextmanager
    def task(self, description: str, total: float | None) -> Iterator[Task]:
        yield _NullTask()

    def log(self, message: str) -> None:
        return None


class RichProgress:
    """Bars with elapsed time, ETA and live fields, for the terminal."""

    def __init__(self, console: Any | None = None) -> None:
        from rich.console import Console

        self.console = console or Console()

    @contextmanager
    def task(self, description: str, total: float | None) -> Iterator[Task]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as _RichProgress

        columns = (
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
        )
        with _RichProgress(*columns, console=self.console, transient=False) as bar:
            tid = bar.add_task(description, total=total, info="")

            class _Task:
                def advance(self, n: float = 1, **fields: Any) -> None:
                    info = "  ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
                    bar.update(tid, advance=n, **({"info": info} if fields else {}))

            try:
                yield _Task()
            except BaseException:
                # A failed step leaves no frozen spinner line above its error message.
                bar.update(tid, visible=False)
                bar.live.transient = True
                raise

    def log(self, message: str) -> None:
        self.console.print(message)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
