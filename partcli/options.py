"""One definition per option: a configuration dataclass's field carries its option's help text,
help panel, choices and allowed range, and from it come the Typer parameters of the commands
(``partcli.cli.typer_options``, the only place that knows Typer), the checks of a ``--config`` YAML file and the
``config.yaml`` a run writes (``dataclasses.asdict``: field names and plain values).

A field becomes an option with ``option(default, help, panel=...)``; ``choices`` names a ``Choice`` enum whose values
the field may take (the field itself holds the plain string, so checkpoints stay ``weights_only``-loadable);
``parse`` turns the text typed on the command line (or a YAML value) into the field's value, naming the option
when it cannot; ``low``/``high`` bound a number (``check_fields`` in ``partcli.config`` refuses a value outside,
naming the option). Options that several commands share (``--device``, ``--batch-size``, ``--seed``, ``--eps``,
the model to evaluate...) come from the field factories at the end of this module, so each is declared once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass
from enum import Enum
from fractions import Fraction
from typing import Any, Callable

from partcli.errors import PartcliError

# Help panels, in the order --help shows them.
DATA, MODEL, OPTIMISATION, ADVERSARY, RUNTIME, RUN = "Data", "Model", "Optimisation", "Adversary", "Runtime", "Run"
# Panels of options that only one command has (robustness, sweep, compare).
SHIFTS, SEARCH, SUMMARY = "Shifts", "Search", "Summary"
PANELS = (DATA, MODEL, SHIFTS, SEARCH, SUMMARY, OPTIMISATION, ADVERSARY, RUNTIME, RUN)


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
    low: float | None = None  # the smallest value allowed (with low_open: values above it only)
    high: float | None = None  # the largest value allowed (with high_open: values below it only)
    low_open: bool = False
    high_open: bool = False


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


def option_name(field: dataclasses.Field) -> str:
    """The name a field's option is typed as (its first flag, e.g. ``--strategy`` for ``strategies``)."""
    spec = spec_of(field)
    return spec.flags.split("/")[0] if spec is not None and spec.flags else flag_name(field.name)


def base_kind(annotation: Any) -> str:
    """``int`` for ``int``, ``int | None``, ``list[int]`` or ``tuple[int, ...]``; ``str`` when in doubt."""
    kinds = [k.strip() for k in str(annotation).split("|") if k.strip() != "None"]
    kind = kinds[0] if len(kinds) == 1 else "str"
    for container in ("list[", "tuple["):
        if kind.startswith(container):
            kind = kind[len(container):].split(",")[0].rstrip("]").strip()
    return kind


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are command-line options, in help order: by panel, then as declared."""
    fields = [f for f in dataclasses.fields(cls) if spec_of(f) is not None and spec_of(f).cli]
    return sorted(fields, key=lambda f: PANELS.index(spec_of(f).panel))


def range_error(spec: OptionSpec, value: Any) -> str | None:
    """Why ``value`` lies outside the field's range (None when it does not, or the field has none)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or (spec.low is None and spec.high is None):
        return None
    low, high = spec.low, spec.high
    below = low is not None and (value <= low if spec.low_open else value < low)
    above = high is not None and (value >= high if spec.high_open else value > high)
    if not below and not above:
        return None
    if high is None:
        return "must be positive" if spec.low_open and low == 0 else \
            f"must be {'above' if spec.low_open else 'at least'} {format_number(low)}"
    if low is None:
        return f"must be {'below' if spec.high_open else 'at most'} {format_number(high)}"
    opening, closing = "(" if spec.low_open else "[", ")" if spec.high_open else "]"
    return f"must lie in {opening}{format_number(low)}, {format_number(high)}{closing}"


def format_number(value: float) -> str:
    """A bound or value as typed: whole numbers in full (4294967295, not 4.29497e+09), others as ``%g``."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def parse_fraction(text: str | float | int, option: str) -> float:
    """Parse '8/255', '0.03' or a number; raise a PartcliError naming ``option`` otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    try:
        return float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise PartcliError(f"{option} {text!r}: expected a number or a fraction such as 8/255") from None


# ----------------------------------------------------------------------------------------- shared options
# Each returns a fresh field; a command's configuration dataclass lists the ones it takes, with its own default
# or help text where they differ.
MAX_SEED = 2**32 - 1  # numpy's legacy seeding takes at most 32 bits; every partcli seed lies in [0, MAX_SEED]
DEVICE_HELP = "auto (CUDA when available), cpu or cuda."


def device_option() -> Any:
    return option("auto", DEVICE_HELP, panel=RUNTIME, choices=Device)


def batch_size_option(default: int, help: str) -> Any:
    return option(default, help, panel=RUNTIME, low=1)


def seed_option(help: str) -> Any:
    return option(0, help, panel=RUN, low=0, high=MAX_SEED)


def split_option(help: str, default: str = "test") -> Any:
    return option(default, help, panel=DATA, choices=Split)


def eps_option(help: str, default: str = "8/255") -> Any:
    """An ℓ∞ radius on [0, 1] pixels, typed as a number or a fraction."""
    return option(parse_fraction(default, "--eps"), help, panel=ADVERSARY, parse=parse_fraction, shown=default,
                  low=0, high=1, low_open=True)


def figure_format_option(help: str, default: str | None = "png", shown: str | None = None) -> Any:
    return option(default, help, panel=RUN, choices=FigureFormat, shown=shown)


def json_option(help: str) -> Any:
    return option(False, help, panel=RUN, flags="--json")


RESULT_JSON_HELP = ("Also print one JSON object per result row on stdout (RobustBench's keys where they exist) and "
                    "write them beside --out as <stem>.<kind>.<k>.json.")


@dataclass
class ModelInput:
    """The model a measuring command runs and the data it runs on (``evaluate``, ``attack``, ``robustness``,
    ``visualize``): a partcli checkpoint or any model, on a prepared dataset."""

    data: str = option("", "Prepared dataset the model was trained for.", panel=DATA, path=True)
    ckpt: str | None = option(None, "A partcli checkpoint (.pt); or give --model.", panel=DATA, path=True)
    model: str | None = option(None, "Any model instead of --ckpt: FILE.py:FUNCTION (FUNCTION() returns an nn.Module "
                               "mapping N×3×H×W images in [0, 1] to logits), a torch.export .pt2 file or a "
                               "TorchScript file.", panel=DATA)
    image_size: int | None = option(None, "Resolution the model sees, a multiple of 16.", panel=DATA,
                                    shown="a checkpoint's training size; 224 for --model")
