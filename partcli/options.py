"""One definition per option: a configuration dataclass's field carries its option's help text,
help panel and choices, and from it come the Typer parameters of the commands, the checks of a ``--config``
YAML file and the ``config.yaml`` a run writes (``dataclasses.asdict``: field names and plain values).

A field becomes an option with ``option(default, help, panel=...)``; ``choices`` names a ``Choice`` enum whose values
the field may take (the field itself holds the plain string, so checkpoints stay ``weights_only``-loadable);
``parse`` turns the text typed on the command line (or a YAML value) into the field's value, naming the option
when it cannot. Commands read only the options given on the command line (``given_options``), so a ``--config``
file's values are not overridden by the defaults Typer fills in.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import MISSING, dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Optional

import typer
from rich.markup import escape

# Help panels, in the order --help shows them.
DATA, MODEL, OPTIMISATION, ADVERSARY, RUNTIME, RUN = "Data", "Model", "Optimisation", "Adversary", "Runtime", "Run"
# Panels of options that only one command has (robustness, sweep, compare).
SHIFTS, SEARCH, SUMMARY = "Shifts", "Search", "Summary"

# click's parameter sources, by name (Typer ≥ 0.22 vendors click and does not export ParameterSource).
_GIVEN_SOURCES = ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


class Choice(str, Enum):
    """The values an option may take (Typer lists them in --help and refuses others)."""

    def __str__(self) -> str:
        return self.value


class Device(Choice):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class Split(Choice):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class FigureFormat(Choice):
    PNG = "png"
    PDF = "pdf"
    SVG = "svg"


@dataclass(frozen=True)
class OptionSpec:
    """How a configuration field appears on the command line; the field itself holds name, type and default."""

    help: str | Callable[[], str]  # a function: the text is built when the command is (from a registry's entries)
    panel: str
    choices: type[Enum] | Callable[[], type[Enum]] | None = None  # a function: a registry's current entries
    flags: str | None = None  # "--yes/--no" names of a boolean flag (default: --name)
    aliases: tuple[str, ...] = ()  # further names of the option (e.g. one that torchrun's own parser leaves alone)
    parse: Callable[[Any, str], Any] | None = None  # (text or YAML value, option name) -> value
    shown: str | None = None  # the default as --help shows it, where the value itself does not read well
    path: bool = False  # a file or folder: typed as a path on the command line, stored as a string
    cli: bool = True  # False: a recorded setting that --config and config.yaml carry, not a command-line option


def option(default: Any = MISSING, help: str = "", *, panel: str, default_factory: Any = MISSING,
           **spec: Any) -> Any:
    """A dataclass field that is also an option (see the module docstring)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"option": OptionSpec(help=help, panel=panel, **spec)})


def spec_of(field: dataclasses.Field) -> OptionSpec | None:
    return field.metadata.get("option")


def choices_of(spec: OptionSpec) -> type[Enum] | None:
    """The option's ``Choice`` enum as of now (one that a registry fills is built anew each time)."""
    choices = spec.choices
    return choices if choices is None or isinstance(choices, type) else choices()


def help_of(spec: OptionSpec) -> str:
    return spec.help if isinstance(spec.help, str) else spec.help()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


# ----------------------------------------------------------------------------------------- Typer parameters
def _base_kind(annotation: Any) -> str:
    kinds = [k.strip() for k in str(annotation).split("|") if k.strip() != "None"]
    return kinds[0] if len(kinds) == 1 else "str"


PANELS = (DATA, MODEL, OPTIMISATION, ADVERSARY, RUNTIME, RUN)


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are command-line options, in help order: by panel, then as declared."""
    fields = [f for f in dataclasses.fields(cls) if spec_of(f) is not None and spec_of(f).cli]
    return sorted(fields, key=lambda f: PANELS.index(spec_of(f).panel))


def typer_parameters(cls: type, names: Iterable[str] | None = None) -> list[inspect.Parameter]:
    """Keyword-only parameters, ``Annotated`` with ``typer.Option``, for the option fields of ``cls`` (all, or
    ``names``), in help order. Their defaults are the fields' own, so ``--help`` shows them."""
    wanted = None if names is None else set(names)
    params = []
    for field in option_fields(cls):
        if wanted is not None and field.name not in wanted:
            continue
        spec = spec_of(field)
        default = field.default if field.default is not MISSING else field.default_factory()  # type: ignore[misc]
        required = default == ""  # no default (--data, --out): the command asks for them (they may come from --config)
        default = None if required else default
        extra: dict[str, Any] = {}
        choices = choices_of(spec)
        if choices is not None:
            py_type: Any = choices
        elif spec.path:
            py_type = Path
        elif spec.parse is not None:
            py_type, default = str, spec.shown if spec.shown is not None else default
        else:
            py_type = {"int": int, "float": float, "bool": bool}.get(_base_kind(field.type), str)
        if choices is not None and default is not None:
            default = [choices(d) for d in default] if isinstance(default, (list, tuple)) else choices(default)
        if isinstance(default, list):
            py_type = list[py_type]  # a repeatable option
        if default in (None, []) and spec.shown is not None:  # no default, or none of a repeatable option
            extra["show_default"] = spec.shown
        decls = [spec.flags] if spec.flags else [flag_name(field.name), *spec.aliases]
        # Typer reads help texts as Rich markup: escaped, a "[text]" in one is shown, not taken for a style
        info = typer.Option(*decls, help=escape(help_of(spec) + (" [required]" if required else "")),
                            rich_help_panel=spec.panel, **extra)
        annotation = Annotated[Optional[py_type] if default is None else py_type, info]
        params.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=annotation))
    return params


def with_parameters(function: Callable,
                    params: list[inspect.Parameter] | Callable[[], list[inspect.Parameter]]) -> Callable:
    """Give ``function`` (which takes ``ctx`` and ``**options``) the signature Typer reads its options from; with
    ``params`` a function, a ``RebuiltCommand``."""
    if callable(params):
        return RebuiltCommand(function, params)
    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
    function.__signature__ = inspect.Signature([context, *params])  # type: ignore[attr-defined]
    function.__annotations__ = {p.name: p.annotation for p in [context, *params]}
    return function


class RebuiltCommand:
    """A command whose signature is built from ``params()`` each time Typer reads it (each run of the CLI), so options
    whose choices or help come from a registry (``--seg-labels``) show the entries registered after import."""

    def __init__(self, function: Callable, params: Callable[[], list[inspect.Parameter]]):
        self.function, self.params = function, params
        self.__name__, self.__qualname__, self.__doc__ = function.__name__, function.__qualname__, function.__doc__
        self.__module__ = function.__module__

    def __call__(self, **options: Any) -> Any:
        return self.function(**options)

    @property
    def __signature__(self) -> inspect.Signature:
        context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        return inspect.Signature([context, *self.params()])

    @property
    def __annotations__(self) -> dict[str, Any]:  # type: ignore[override]
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}


def given_options(ctx: typer.Context, values: dict[str, Any], cls: type | None = None) -> dict[str, Any]:
    """The options the user typed, as field values: enums to their strings, paths to strings, texts parsed."""
    fields = {f.name: spec_of(f) for f in dataclasses.fields(cls)} if cls is not None else {}
    given = {}
    for name, value in values.items():
        source = ctx.get_parameter_source(name)
        if source is None or source.name not in _GIVEN_SOURCES:
            continue
        spec = fields.get(name)
        given[name] = convert(value, spec, flag_name(name))
    return given


def convert(value: Any, spec: OptionSpec | None, option: str) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return type(value)(convert(v, spec, option) for v in value)
    if spec is not None and spec.parse is not None and value is not None:
        return spec.parse(value, option)
    return value
