"""The experiment trackers ``--logger`` can name, in timm's manner: ``@register_logger`` fills one table that the
option's choices, the check for a missing library and ``Trackers.open`` read.

A tracker is a class built as ``cls(folder, run)`` (``RunInfo``) that writes under ``folder`` (``<run>/<folder>``)
and has ``run_id`` (what a resumed run passes back as ``run.tracker_id``; None where the library needs none),
``where`` (a line telling the user where to look),
``log_config(config, text)``, ``log_scalars(values, step)``, ``log_image(name, image, step)`` and
``close(failed)``. Its library is imported when it is opened, never when this table is read, so ``--help`` and
option checks stay fast and work without it.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol

import numpy as np

from partcli.errors import PartcliError, writing
from partcli.files import check_can_create


@dataclass(frozen=True)
class RunInfo:
    """What a tracker is told about the run it follows."""

    name: str  # the run folder's name
    tracker_id: str | None  # this tracker's run to continue (stored by an earlier part of the run), or None
    resumed_step: int  # the global step the run continues after (0: a fresh run)


class Tracker(Protocol):
    run_id: str | None
    where: str

    def log_config(self, config: Mapping[str, Any], text: str) -> None: ...

    def log_scalars(self, values: Mapping[str, float], step: int) -> None: ...

    def log_image(self, name: str, image: np.ndarray, step: int) -> None: ...

    def close(self, failed: bool) -> None: ...


@dataclass(frozen=True)
class LoggerSpec:
    name: str
    package: str  # the module its library is imported as
    folder: str  # where it writes, inside the run folder
    build: Callable[[Path, RunInfo], Tracker]


_LOGGERS: dict[str, LoggerSpec] = {}


def register_logger(name: str, *, package: str, folder: str) -> Callable[[type], type]:
    """Class decorator: make the tracker class available as ``--logger name``."""

    def add(cls: type) -> type:
        _LOGGERS[name] = LoggerSpec(name, package, folder, cls)
        return cls

    return add


def logger_names() -> tuple[str, ...]:
    return tuple(_LOGGERS)


def logger_spec(name: str) -> LoggerSpec:
    return _LOGGERS[name]


def parse_loggers(value: Any, option: str) -> list[str]:
    """A ``--config`` value of ``logger``: a list of registered names (one name alone is taken as a list)."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise PartcliError(f"{option}: expected a list of loggers ({', '.join(_LOGGERS)}), got {value!r}")
    unknown = [n for n in names if n not in _LOGGERS]
    if unknown:
        raise PartcliError(f"{option} {unknown[0]!r}: expected one of {', '.join(_LOGGERS)}")
    return list(dict.fromkeys(names))


def check_loggers_installed(names: Iterable[str]) -> None:
    """Refuse, before any work, a logger whose library is not installed, naming the extra that installs it."""
    for name in names:
        spec = _LOGGERS[name]
        if importlib.util.find_spec(spec.package) is None:
            raise PartcliError(f"--logger {name}: needs the {spec.package} package: pip install 'partcli[{name}]'")


def check_logger_folders(run_dir: Path, names: Iterable[str]) -> None:
    """Refuse, before any work, a logger whose folder in ``run_dir`` could not be written."""
    for name in names:
        folder = run_dir / _LOGGERS[name].folder
        option = f"--logger {name}"
        if folder.exists() and not folder.is_dir():
            raise PartcliError(f"{option}: {folder} exists and is not a folder; move it away")
        check_can_create(folder, option)


def open_tracker(name: str, run_dir: Path, run: RunInfo) -> Tracker:
    """The tracker ``name`` writing in its folder of ``run_dir``; a folder it cannot write is a one-line error."""
    spec = _LOGGERS[name]
    folder = run_dir / spec.folder
    with writing(folder, f"--logger {name}"):
        folder.mkdir(parents=True, exist_ok=True)
        return spec.build(folder, run)
