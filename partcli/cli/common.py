"""What several commands share on the command line: ``--config``, reading a command's options into its
configuration dataclass (one check of what each field declares), the model-input options and result output."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any, Callable, Optional, TypeVar

import typer

from partcli.cli.typer_options import given_options, typer_parameters
from partcli.config import check_fields, help_default, read_config_file
from partcli.errors import PartcliError
from partcli.options import RUN, ModelInput, spec_of
from partcli.progress import say

C = TypeVar("C")
KW = inspect.Parameter.KEYWORD_ONLY


def _config_defaults(cls: type) -> Callable[[typer.Context, Optional[Path]], Optional[Path]]:
    """``--config`` callback: the file's values become the defaults ``--help`` shows (put --config first)."""

    def callback(ctx: typer.Context, value: Optional[Path]) -> Optional[Path]:
        if value is not None and not ctx.resilient_parsing:
            shown = {k: help_default(v) for k, v in read_config_file(cls, value).items()
                     if spec_of(cls.__dataclass_fields__[k]) and spec_of(cls.__dataclass_fields__[k]).cli}
            ctx.default_map = {**(ctx.default_map or {}), **shown}
        return value

    return callback


def argument_parameter(name: str, annotation: Any) -> inspect.Parameter:
    """A command's positional argument (``annotation``: ``Annotated[..., typer.Argument(...)]``)."""
    return inspect.Parameter(name, KW, annotation=annotation)


def config_parameter(cls: type, what: str = "options") -> inspect.Parameter:
    """``--config FILE.yaml``: ``cls``'s values from a file; options given on the command line win."""
    info = typer.Option("--config", help=f"YAML file of {what}; options given here win. Given before --help, its "
                        "values show as the defaults.", rich_help_panel=RUN, is_eager=True,
                        callback=_config_defaults(cls))
    return inspect.Parameter("config", KW, default=None, annotation=Annotated[Optional[Path], info])


def read_options(ctx: typer.Context, cls: type[C], config: Optional[Path], options: dict[str, Any]) -> C:
    """``cls`` from its defaults, then the ``--config`` file, then the options typed; each field's declared
    choices and range checked once (``check_fields``)."""
    given = {**(read_config_file(cls, config) if config else {}), **given_options(ctx, options, cls)}
    cfg = cls(**given)
    check_fields(cfg)
    return cfg


def pop_fields(options: dict[str, Any], cls: type) -> dict[str, Any]:
    """The options of ``cls``'s fields, taken out of ``options`` (a command reading several dataclasses)."""
    return {name: options.pop(name) for name in cls.__dataclass_fields__ if name in options}


def model_input(ctx: typer.Context, options: dict[str, Any]) -> ModelInput:
    """The model and data options (``ModelInput``) out of a command's options, which then hold only its own."""
    given = given_options(ctx, pop_fields(options, ModelInput), ModelInput)
    if not given.get("data"):
        raise PartcliError("--data is required: the prepared dataset the model was trained for")
    inputs = ModelInput(**given)
    check_fields(inputs)
    return inputs


def model_input_parameters(data_help: str | None = None) -> list[inspect.Parameter]:
    """The model-input options; ``data_help``: the command's own help text of ``--data``."""
    return typer_parameters(ModelInput, helps={"data": data_help} if data_help else None)


def pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def emit_json(rows: list[dict[str, Any]], out: Path | str, kind: str) -> None:
    """``--json``: the rows as JSON lines on stdout, and as a JSON file beside the results CSV."""
    from partcli.evaluate.results_json import json_lines, json_path, write_json

    path = json_path(Path(out), kind)
    write_json(path, rows)
    print(json_lines(rows), flush=True)
    say(f"wrote {path}")
