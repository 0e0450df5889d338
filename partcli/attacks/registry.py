"""Attack suites (``--suite``) as one registered entry per suite.

``register_suite`` (in the manner of ``register_arch``) fills one table: each entry names a suite, says whether it
needs a part segmenter, which threat models (``--norm``) it supports, which evaluation-hygiene checks may run their
extra PGD for it, and builds the suite's attacks from the scheduler (``partcli.attacks.scheduler``). The
``--suite`` choices and help, the option checks, ``all`` (every registered suite in order, then its own row),
the hygiene checks and the tests read the table; adding a suite is one decorated builder.

The table is read when the CLI starts (``--help``, the option checks), so this module imports no torch; the
built-in suites (``partcli.attacks.suites``) are registered at the end of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from partcli.errors import PartcliError
from partcli.options import Choice

if TYPE_CHECKING:
    import torch

    from partcli.attacks.scheduler import Scheduler

ALL = "all"  # every registered suite, then an ``all`` row (robust only if a sample survives every attack at ε)
NORMS = ("Linf", "L2")
ALL_HYGIENE = ("restarts", "clean-model")  # the checks that may run their extra PGD for ``all``


@dataclass
class Attack:
    """One attack of a suite: its row name, radius, and a function giving per-sample robust flags."""

    name: str
    eps: float
    run: Callable[[], torch.Tensor]
    pixel_acc: Callable[[], float | None] | None = None
    earlier_seconds: float = 0.0  # spent on this attack by an interrupted earlier run that ``run`` resumed
    settings: dict[str, Any] = field(default_factory=dict)  # a PGD-type attack's steps, step_size and restarts


Builder = Callable[["Scheduler"], list[Attack]]


@dataclass(frozen=True)
class SuiteEntry:
    """One registered ``--suite``: ``build(scheduler)`` gives its attacks in row order."""

    name: str
    build: Builder
    help: str  # a phrase for --help, after the name: "App. B"
    needs_segmenter: bool = False  # a part model's segmenter guides the attack (refused for other models)
    norms: tuple[str, ...] = NORMS  # the --norm values it supports
    hygiene: tuple[str, ...] = ()  # hygiene checks that may run their extra PGD when no row of the suite has it


SUITE_REGISTRY: dict[str, SuiteEntry] = {}


def register_suite(name: str, *, help: str, needs_segmenter: bool = False, norms: tuple[str, ...] = NORMS,
                   hygiene: tuple[str, ...] = ()) -> Callable[[Builder], Builder]:
    """Decorator: register ``fn(scheduler) -> [Attack]`` as the builder of ``--suite name``."""

    def register(fn: Builder) -> Builder:
        if name in SUITE_REGISTRY or name == ALL:
            raise ValueError(f"attack suite {name!r} is registered twice")
        SUITE_REGISTRY[name] = SuiteEntry(name, fn, help, needs_segmenter, tuple(norms), tuple(hygiene))
        return fn

    return register


def suite_names() -> tuple[str, ...]:
    """The ``--suite`` values: the registered suites in order, then ``all``."""
    return (*SUITE_REGISTRY, ALL)


def suite_entry(name: str) -> SuiteEntry:
    entry = SUITE_REGISTRY.get(name)
    if entry is None:
        raise PartcliError(f"--suite {name!r}: expected one of {', '.join(suite_names())}")
    return entry


def segmenter_suites() -> tuple[str, ...]:
    """The suites that need a part segmenter (``all`` skips them for other models)."""
    return tuple(name for name, entry in SUITE_REGISTRY.items() if entry.needs_segmenter)


def suites_for_norm(norm: str) -> tuple[str, ...]:
    """The suites that support ``norm``, ``all`` included."""
    return (*(name for name, entry in SUITE_REGISTRY.items() if norm in entry.norms), ALL)


def extra_run_suites(check: str) -> tuple[str, ...]:
    """The suites for which the hygiene check ``check`` may run its extra PGD."""
    own = tuple(name for name, entry in SUITE_REGISTRY.items() if check in entry.hygiene)
    return own + ((ALL,) if check in ALL_HYGIENE else ())


def suites_help() -> str:
    """The ``--suite`` help text: every registered suite with its phrase."""
    return ", ".join(f"{e.name} ({e.help})" for e in SUITE_REGISTRY.values()) + " or all."


def suite_choices() -> type[Choice]:
    """``--suite``: a ``Choice`` of the suites registered now."""
    return Choice("Suite", {name: name for name in suite_names()})  # type: ignore[return-value]


from partcli.attacks import suites as _builtin_suites  # noqa: E402,F401  registers the built-in suites
