"""Console output shared by all stages: progress, warnings, and a global --quiet switch.

Messages hold user text (paths, dataset and class names), so none of them is read as Rich markup: ``say``,
``info``, ``warn`` and ``error`` print it as it is, and ``plain`` makes a table title or cell that stays so.

Progress (``track``, ``run_progress``) is drawn as rich bars when stderr is a terminal; elsewhere (a log file,
SLURM, nohup) it is printed as timestamped lines, a line every ``every`` items and at least every ``HEARTBEAT_S``
seconds, with the elapsed time and the ETA, so that a job's log shows it is alive and when it will end (a task
without its own ``every`` prints only once it has run ``SILENT_START_S``).
"""
from __future__ import annotations

import contextlib
import datetime
import os
import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

from rich.console import Console
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")

console = Console(stderr=True, soft_wrap=True)  # logs, progress, warnings, errors
RESULT_WIDTH = 160  # columns of a result table written to a file or a pipe (rich's default there is 80)
results = Console(soft_wrap=True, width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or RESULT_WIDTH))
_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    """Silence progress bars and info messages (warnings still print)."""
    _state["quiet"] = quiet


def is_quiet() -> bool:
    return _state["quiet"]


def plain(text: object) -> Text:
    """``text`` as a Rich renderable that is never read as markup (for table titles and cells)."""
    return Text(str(text))


def show(renderable: object, json_on_stdout: bool = False) -> None:
    """A result (a table, a summary) on stdout, where a pipe or ``> file`` finds it; on stderr when stdout carries
    ``--json`` output, which must stay parseable."""
    (console if json_on_stdout else results).print(renderable)


def say(message: str) -> None:
    """A result line (printed even with --quiet)."""
    console.print(message, markup=False, highlight=False)


def info(message: str) -> None:
    if not _state["quiet"]:
        console.print(message, markup=False, highlight=False)


def warn(message: str) -> None:
    console.print(Text.assemble(("warning:", "yellow"), " ", message), highlight=False)


def error(message: str) -> None:
    """The one line of a refused command: ``error: <message>``, naming the file or option."""
    console.print(Text.assemble(("error:", "red"), " ", message), highlight=False)


HEARTBEAT_S = 60.0  # off a terminal: a progress line at least this often
LINES_PER_TASK = 10  # off a terminal, by default: a line every tenth of a task
SILENT_START_S = 5.0  # ... once it has run this long (a task done sooner leaves no lines)
COLUMNS = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
           TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
_live: dict[str, Progress] = {}  # the progress display on the terminal while one is open
_interrupt: dict[str, Callable[[], str]] = {}  # what an interrupted command says it kept (``on_interrupt``)


def on_interrupt(note: Callable[[], str] | None) -> None:
    """What the command says after ``interrupted`` on Ctrl-C: what it kept and how to continue (``None``: nothing)."""
    if note is None:
        _interrupt.pop("note", None)
    else:
        _interrupt["note"] = note


def interrupt_note() -> str | None:
    note = _interrupt.get("note")
    return note() if note else None


def duration(seconds: float) -> str:
    """``H:MM:SS`` (days as ``Nd H:MM:SS``)."""
    days, rest = divmod(int(round(seconds)), 86400)
    text = str(datetime.timedelta(seconds=rest))
    return f"{days}d {text}" if days else text


@contextlib.contextmanager
def _bar(description: str, total: int | None) -> Iterator[Callable[[str], None]]:
    """A task on the terminal's progress display, opened here unless one is (a run's bar holds its epochs' bars);
    yields ``advance(status)``."""
    progress = _live.get("progress")
    opened = progress is None
    if opened:
        progress = Progress(*COLUMNS, console=console, transient=True)
        progress.start()
        _live["progress"] = progress
    task = progress.add_task(description, total=total, status="")
    try:
        yield lambda status: progress.update(task, advance=1, status=status)
    finally:
        progress.remove_task(task)
        if opened:
            progress.stop()
            _live.pop("progress", None)


class _Lines:
    """Progress as log lines: one every ``every`` items and at least every ``HEARTBEAT_S`` seconds."""

    def __init__(self, description: str, total: int | None, every: int | None) -> None:
        self.description, self.total = description, total
        self.silent_for = 0.0 if every else SILENT_START_S  # a short task of the default kind prints nothing
        if every is None:
            every = max(1, total // LINES_PER_TASK) if total else 0
        self.every = every
        self.start = self.last = time.monotonic()
        self.done = 0

    def advance(self, status: str) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.start < self.silent_for:
            return
        if (self.every and self.done % self.every == 0) or now - self.last >= HEARTBEAT_S:
            self.last = now
            console.print(self.line(now, status), markup=False, highlight=False)

    def line(self, now: float, status: str) -> str:
        elapsed = now - self.start
        count = f"{self.done}/{self.total} ({self.done / self.total:.0%})" if self.total else str(self.done)
        eta = (f", ETA {duration(elapsed / self.done * (self.total - self.done))}"
               if self.total and self.done else "")
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        return f"{stamp} {self.description} {count} {duration(elapsed)} elapsed{eta}" + (f" | {status}" if status else "")


@contextlib.contextmanager
def _progress(description: str, total: int | None, every: int | None) -> Iterator[Callable[[str], None]]:
    if _state["quiet"]:
        yield lambda status: None
    elif console.is_terminal:
        with _bar(description, total) as advance:
            yield advance
    else:
        yield _Lines(description, total, every).advance


def track(iterable: Iterable[T], description: str, total: int | None = None, every: int | None = None,
          status: Callable[[], str] | None = None) -> Iterator[T]:
    """Iterate with progress on stderr (nothing when quiet): a rich bar on a terminal, else log lines (module
    docstring) every ``every`` items (default: every tenth of ``total``). ``status()``: text shown with it, called
    after each item (e.g. the running loss)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with _progress(description, total, every) as advance:
        for item in iterable:
            yield item
            advance(status() if status else "")


class RunProgress:
    """A long run's steps over all its stages (a training run's epochs): its share done and its ETA, counted over
    the steps of this process (a resumed run's earlier epochs are not in ``total``)."""

    def __init__(self, total: int, advance: Callable[[str], None]) -> None:
        self.total, self.done, self._advance = total, 0, advance
        self.start = time.monotonic()

    def step(self) -> None:
        self.done += 1
        self._advance("")

    def describe(self) -> str:
        """e.g. ``run 12% ETA 0:14:32``."""
        if not self.done or not self.total:
            return "run 0%"
        elapsed = time.monotonic() - self.start
        return f"run {self.done / self.total:.0%} ETA {duration(elapsed / self.done * (self.total - self.done))}"


@contextlib.contextmanager
def run_progress(description: str, total: int) -> Iterator[RunProgress]:
    """A run's progress: a bar above its stages' bars on a terminal; off a terminal no lines of its own (its
    stages' lines carry ``RunProgress.describe``)."""
    if _state["quiet"] or not console.is_terminal:
        yield RunProgress(total, lambda status: None)
        return
    with _bar(description, total) as advance:
        yield RunProgress(total, advance)
