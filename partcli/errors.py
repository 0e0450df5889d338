"""Errors meant for users: the CLI prints their message on one line and exits with code 2."""
from __future__ import annotations

import contextlib
import re
import tempfile
from pathlib import Path
from typing import Iterator

# How torch's DataLoader re-raises an exception from a worker process: ``type(exc)(text)`` with the worker's
# whole traceback as text, "Caught PartcliError in DataLoader worker process 0.\nOriginal Traceback ...".
_WORKER_TRACEBACK = re.compile(r"Caught \w+ in DataLoader worker process \d+\.\n")


class PartcliError(Exception):
    """A problem with the user's input (a file, a folder or an option), not a bug in partcli.

    The message must name the file or option at fault and say what to do about it. Raised in a DataLoader
    worker, it reaches the main process with the same one-line message (not the worker's traceback).
    """

    def __init__(self, message: str = "") -> None:
        text = str(message)
        if _WORKER_TRACEBACK.match(text):
            marker = f"{type(self).__module__}.{type(self).__qualname__}: "
            text = text.rstrip("\n").rsplit(marker, 1)[-1]
        super().__init__(text)


@contextlib.contextmanager
def writing(path: str | Path, option: str = "--out") -> Iterator[None]:
    """Turn an OSError while writing ``path`` (read-only, full, not a folder) into a one-line PartcliError."""
    try:
        yield
    except OSError as exc:
        raise PartcliError(f"{option} {path}: cannot write there ({exc.strerror or exc.__class__.__name__})") from None


def check_writable(path: str | Path, option: str = "--out") -> None:
    """Fail before the work, not after it, when the output file ``path`` cannot be created in its folder."""
    path = Path(path)
    with writing(path, option):
        path.parent.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path.parent).close()
