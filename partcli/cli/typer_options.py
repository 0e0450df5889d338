"""The one place that knows Typer: the parameters of a command built from its configuration dataclass's fields
(``partcli.options``), and the values the user typed read back as field values.

Commands read only the options given on the command line (``given_options``), so a ``--config`` file's values are
not overridden by the defaults Typer fills in.
"""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import MISSING
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Iterable, Optional

import typer
from rich.markup import escape

from partcli.options import OptionSpec, base_kind, choices_of, flag_name, help_of, option_fields, spec_of

# click's parameter sources, by name (Typer ≥ 0.22 vendors click and does not export ParameterSource).
_GIVEN_SOURCES = ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


def typer_parameters(cls: type, names: Iterable[str] | None = None,
                     helps: dict[str, str] | None = None) -> list[inspect.Parameter]:
    """Keyword-only parameters, ``Annotated`` with ``typer.Option``, for the option fields of ``cls`` (all, or
    ``names``), in help order. Their defaults are the fields' own, so ``--help`` shows them; ``helps`` gives a
    command's own help text of a shared field (by field name)."""
    wanted = None if names is None else set(names)
    params = []
    for field in option_fields(cls):
        if wanted is not None and field.name not in wanted:
            continue
        spec = spec_of(field)
        default = field.default if field.default is not MISSING else field.default_factory()  # type: ignore[misc]
        required = default == ""  # no default (--data, --out): the command asks for them
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
            py_type = {"int": int, "float": float, "bool": bool}.get(base_kind(field.type), str)
        if choices is not None and default is not None:
            default = [choices(d) for d in default] if isinstance(default, (list, tuple)) else choices(default)
        if isinstance(default, list):
            py_type = list[py_type]  # a repeatable option
        if default in (None, []) and spec.shown is not None:  # no default, or none of a repeatable option
            extra["show_default"] = spec.shown
        decls = [spec.flags] if spec.flags else [flag_name(field.name), *spec.aliases]
        # Typer reads help texts as Rich markup: escaped, a "[text]" in one is shown, not taken for a style
        text = (helps or {}).get(field.name) or help_of(spec)
        info = typer.Option(*decls, help=escape(text + (" [required]" if required else "")),
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
