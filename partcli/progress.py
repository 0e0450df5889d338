"""Console output shared by all stages: rich progress bars, warnings, and a global --quiet switch.

Messages hold user text (paths, dataset and class names), so none of them is read as Rich markup: ``say``,
``info``, ``warn`` and ``error`` print it as it is, and ``plain`` makes a table title or cell that stays so.
"""
from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")

console = Console(stderr=True, soft_wrap=True)
_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    """Silence progress bars and info messages (warnings still print)."""
    _state["quiet"] = quiet


def is_quiet() -> bool:
    return _state["quiet"]


def plain(text: object) -> Text:
    """``text`` as a Rich renderable that is never read as markup (for table titles and cells)."""
    return Text(str(text))


def say(message: str) -> None:
    """A result line (printed even with --quiet)."""
    console.print(message, markup=False, highlight=False)


def info(message: str) -> None:
    if not _state["quiet"]:
        console.print(message, markup=False, highlight=False)


def warn(message: str) -> None:
    console.print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False)


def error(message: str) -> None:
    """The one line of a refused command (DESIGN §5)."""
    console.print(Text.assemble(("error:", "red"), " ", message), highlight=False)


def track(iterable: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate with a rich progress bar on stderr (no bar when quiet or when stderr is not a terminal)."""
    if _state["quiet"] or not console.is_terminal:
        yield from iterable
        return
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        for item in iterable:
            yield item
            progress.advance(task)
