"""Typed configurations: dataclass defaults < YAML file < command-line options; resolved config written out.

Values are checked against their field (``partcli.options``): type, choices and the field's own parser, so a
``--config`` file is held to the same rules as the command line.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, TypeVar

import yaml

from partcli.errors import PartcliError
from partcli.options import base_kind, choices_of, format_number, option_name, parse_fraction, range_error, spec_of
from partcli.settings_history import with_added_settings

C = TypeVar("C")


def eps_label(eps: float, norm: str = "Linf", sep: str = "/") -> str:
    """A radius as people write it: k/255 for ℓ∞ radii on that grid, else the number (every ℓ2 radius).

    The one k/255 formatter (tables, figure titles, ``--help`` defaults); ``sep="-"`` spells it for file names.
    """
    k = eps * 255
    return f"{round(k)}{sep}255" if norm == "Linf" and math.isclose(k, round(k), abs_tol=1e-6) else f"{eps:g}"


def help_default(value: Any) -> Any:
    """A value as ``--help`` shows it when a ``--config`` file sets it (k/255 radii as fractions)."""
    if isinstance(value, float) and value and eps_label(value).endswith("/255"):
        return eps_label(value)
    return value


PRETRAINED_KEYWORDS = ("none", "imagenet", "timm")
TIMM_PREFIX = "timm:"


def parse_pretrained(value: Any, option: str = "--pretrained") -> str | None:
    """``none`` -> None; ``imagenet``, ``timm``, ``timm:<model>.<tag>`` and file paths are kept as given."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise PartcliError(f"{option} {value!r}: expected none, imagenet, timm, timm:<model>.<tag> or a weights file")
    text = value.strip()
    if text.lower() == "none":
        return None
    if text.startswith(TIMM_PREFIX) and not text[len(TIMM_PREFIX):]:
        raise PartcliError(f"{option} {text}: name timm's weights after the colon, e.g. timm:resnet50.ram_in1k")
    return text


def names_library_weights(value: str | None) -> bool:
    """Whether a --pretrained value names a library's weights (imagenet, timm, timm:…), not a file."""
    return value is not None and (value in PRETRAINED_KEYWORDS or value.startswith(TIMM_PREFIX))


def parse_workers(value: str | int, option: str) -> str | int:
    """``auto`` or a number of DataLoader worker processes (≥ 0)."""
    if value == "auto":
        return "auto"
    try:
        number = int(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number < 0 or (isinstance(value, float) and value != number):
        raise PartcliError(f"{option} {value!r}: expected auto or a number of worker processes (0 or more)")
    return number


def read_yaml_mapping(path: Path) -> dict[str, Any] | None:
    """The mapping a YAML file holds; None when it does not parse, is not text or holds something else."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def read_config_file(cls: type, config_file: str | Path) -> dict[str, Any]:
    """The checked values of a ``--config`` YAML file (keys are ``cls``'s field names)."""
    path = Path(config_file)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise PartcliError(f"--config {path}: file not found") from None
    except IsADirectoryError:
        raise PartcliError(f"--config {path}: a folder, not a YAML file") from None
    except UnicodeDecodeError:
        raise PartcliError(f"--config {path}: not a text file; expected YAML") from None
    except OSError as exc:
        raise PartcliError(f"--config {path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError:
        raise PartcliError(f"--config {path}: not valid YAML") from None
    if not isinstance(doc, dict):
        raise PartcliError(f"--config {path}: expected a mapping of option names to values")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if "partcli_version" in doc:  # a run's config.yaml: settings added since it was written take its old values
        doc = with_added_settings(doc, set(fields))
    unknown = set(doc) - set(fields) - {"partcli_version"}
    if unknown:
        raise PartcliError(f"--config {path}: unknown key(s) {', '.join(sorted(unknown))}")
    return {k: check_value(fields[k], v, f"--config {path}: {k}") for k, v in doc.items() if k in fields}


def resolve_config(cls: type[C], config_file: str | Path | None, overrides: dict[str, Any]) -> C:
    """Build ``cls`` from its defaults, then the YAML file's keys, then the options the user gave (non-None)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = read_config_file(cls, config_file) if config_file is not None else {}
    values.update({k: v for k, v in overrides.items() if v is not None and k in names})
    return cls(**values)  # type: ignore[call-arg]


def check_value(field: dataclasses.Field, value: Any, where: str) -> Any:
    """Check a value (from YAML or the Python API) against its field: type, choices and ``parse``.

    Numbers may be written as fractions ("8/255") for float fields; ints are accepted for floats. Annotations
    other than str, int, float and bool (optionally "| None") are passed through unchecked.
    """
    spec = spec_of(field)
    kinds = [k.strip() for k in str(field.type).split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise PartcliError(f"{where} must not be empty")
    if spec is not None and spec.parse is not None:
        value = spec.parse(value, where)
        if isinstance(value, float) and not math.isfinite(value):
            raise PartcliError(f"{where}: expected a finite number, got {value!r}")
        return value
    base = [k for k in kinds if k != "None"]
    if len(base) == 1 and base[0].startswith(("list[", "tuple[")):
        return check_items(field, value, base[0], where)
    if len(base) != 1 or base[0] not in ("str", "int", "float", "bool"):
        return value
    kind = base[0]
    if kind == "float" and not isinstance(value, bool):
        number = parse_fraction(value, where) if isinstance(value, str) else value
        if isinstance(number, (int, float)):
            if not math.isfinite(number):
                raise PartcliError(f"{where}: expected a finite number, got {value!r}")
            return float(number)
    if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "str" and isinstance(value, str):
        return check_choice(field, value, where)
    article = "an" if kind == "int" else "a"
    hint = " (YAML reads on/off/yes/no as booleans: quote the word)" if kind == "str" and isinstance(value, bool) else ""
    raise PartcliError(f"{where}: expected {article} {kind}, got {value!r}{hint}")


ITEM_TYPES = {"str": (str,), "int": (int,), "float": (int, float)}


def check_items(field: dataclasses.Field, value: Any, kind: str, where: str) -> Any:
    """A repeatable option's value (e.g. ``severity: [1, 2]``): a list whose items have the field's item type
    (``str``, ``int`` or ``float``; others pass unchecked) and lie in its choices."""
    if not isinstance(value, (list, tuple)):
        raise PartcliError(f"{where}: expected a list, got {value!r} (write [{value}] for one value)")
    item = base_kind(kind)
    types = ITEM_TYPES.get(item)
    wrong = [] if types is None else [v for v in value if isinstance(v, bool) or not isinstance(v, types)]
    if wrong:
        raise PartcliError(f"{where}: expected a list of {item} values, got {wrong[0]!r}")
    return check_choice(field, value, where)


def check_choice(field: dataclasses.Field, value: Any, where: str) -> Any:
    spec = spec_of(field)
    choices = None if spec is None else choices_of(spec)
    if choices is not None and value is not None:
        allowed = {c.value for c in choices}
        for item in value if isinstance(value, (list, tuple)) else [value]:  # a repeatable option: each value
            if item not in allowed:
                raise PartcliError(f"{where} {item!r}: expected one of {', '.join(c.value for c in choices)}")
    return value


def check_choices(config: Any) -> None:
    """Refuse a field value outside its choices (a configuration built in Python bypasses the CLI's Enum)."""
    for field in dataclasses.fields(config):
        check_choice(field, getattr(config, field.name), option_name(field))


def check_fields(config: Any) -> None:
    """The one check of what each field declares: choices, finite numbers and the field's range (``low``/``high``);
    a stage's validator adds only the rules that relate several fields."""
    check_choices(config)
    for field in dataclasses.fields(config):
        value, spec = getattr(config, field.name), spec_of(field)
        if isinstance(value, float) and not math.isfinite(value):
            raise PartcliError(f"{option_name(field)} {value}: must be a finite number")
        problem = None if spec is None else range_error(spec, value)
        if problem:
            raise PartcliError(f"{option_name(field)} {format_number(value)}: {problem}")


def write_config(path: Path, config: Any, extra: dict[str, Any] | None = None) -> None:
    doc = dataclasses.asdict(config)
    doc.update(extra or {})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
