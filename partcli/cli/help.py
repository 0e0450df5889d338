"""How ``--help`` shows an option's value: ``INT``, ``FLOAT``, ``PATH``, ``TEXT`` or the choices joined by ``|``
(wrapped to a narrow column), ``...`` after a repeatable option's, nothing after a flag; and ``--help`` itself in
the command's last panel. Typer's own labels are Python types (``<bool>``, ``<list[str]>``).

The labels are set on the commands' parameters as the command groups hand them out (``HelpGroup``), so every
option gets them, whether declared in a configuration dataclass or in ``partcli.cli``."""
from __future__ import annotations

from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, Iterator, get_args, get_origin

import typer
from typer.core import TyperGroup

from partcli.options import RUN

CHOICE_WIDTH = 20  # characters per line of a list of choices: the help texts beside it keep their room

_KINDS = {int: "INT", float: "FLOAT", Path: "PATH"}


def choices_label(values: list[str], repeatable: bool = False) -> str:
    """``a|b|c`` broken after a ``|`` into lines of at most ``CHOICE_WIDTH`` characters (``[a|b]...`` when the
    option is repeatable)."""
    text = "|".join(values)
    if repeatable:
        text = f"[{text}]..."
    lines, line = [], ""
    for piece in text.replace("|", "|\n").split("\n"):
        if line and len(line) + len(piece) > CHOICE_WIDTH:
            lines.append(line)
            line = ""
        line += piece
    return "\n".join([*lines, line])


def value_label(param: Any) -> str:
    """The label ``--help`` shows after an option's names or beside an argument ("" for a flag)."""
    if getattr(param, "is_flag", False):  # an option that takes no value (arguments have no is_flag)
        return ""
    desc = param.type_descriptor
    repeatable = param.nargs != 1 or bool(getattr(param, "multiple", False))
    if desc.is_choice:
        return choices_label([str(c.value if isinstance(c, Enum) else c) for c in desc.choices], repeatable)
    kind = desc.annotation
    if get_origin(kind) is list:
        (kind,) = get_args(kind)
    return _KINDS.get(kind, "PATH" if desc.is_path else "TEXT") + ("..." if repeatable else "")


def label_options(command: Any, ctx: typer.Context) -> None:
    """Give ``command``'s options and arguments their labels, and put ``--help`` in the last panel its options use."""
    params = command.get_params(ctx)
    for param in params:
        label = value_label(param)
        if isinstance(param, typer.core.TyperArgument):  # its metavar would be its name; Typer reads the label here
            param.display_type_rich = lambda ctx, label=label: label
        else:
            param.metavar = label
    help_option = command.get_help_option(ctx)
    panels = [p.rich_help_panel for p in params if p is not help_option and getattr(p, "rich_help_panel", None)]
    if help_option is not None and panels:  # the panels show in the order their first option comes
        help_option.rich_help_panel = RUN if RUN in panels else list(dict.fromkeys(panels))[-1]


@contextmanager
def paired_flags_stacked(params: list[Any]) -> Iterator[None]:
    """While the help is drawn, show a paired flag's two names stacked in the names column (``--drop-background``
    over ``--keep-background``) instead of in two columns that squeeze every option's description."""
    paired = [p for p in params if getattr(p, "secondary_opts", None)]
    saved = [(p.opts, p.secondary_opts) for p in paired]
    for p in paired:
        default = (p.opts if p.default else p.secondary_opts)[0].lstrip("-")  # Typer's "[default: ...]" of a pair
        p.opts, p.secondary_opts = ["\n".join([*p.opts, *p.secondary_opts])], []
        p._get_default_string = lambda default=default, **_: default
    try:
        yield
    finally:
        for p, (opts, secondary) in zip(paired, saved):
            p.opts, p.secondary_opts = opts, secondary
            del p._get_default_string


class HelpGroup(TyperGroup):
    """A command group whose commands (and itself) show their options as ``label_options`` says."""

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None and not isinstance(command, HelpGroup):
            label_options(command, ctx)
            if not getattr(command, "_stacks_flags", False):
                command.format_help = _stacking(command.format_help, command)
                command._stacks_flags = True
        return command

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        label_options(self, ctx)
        with paired_flags_stacked(self.get_params(ctx)):
            super().format_help(ctx, formatter)


def _stacking(format_help: Any, command: Any) -> Any:
    def wrapped(ctx: typer.Context, formatter: Any) -> None:
        with paired_flags_stacked(command.get_params(ctx)):
            format_help(ctx, formatter)
    return wrapped
