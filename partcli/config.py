"""Typed configurations: dataclass defaults < YAML file < command-line options; resolved config written out."""
from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import yaml

from partcli.errors import PartcliError

C = TypeVar("C")


def parse_fraction(text: str | float | int, option: str) -> float:
    """Parse '8/255', '0.03' or a number; raise a PartcliError naming ``option`` otherwise."""
    if isinstance(text, (int, float)):
        return float(text)
    try:
        return float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError, OverflowError):
        raise PartcliError(f"{option} {text!r}: expected a number or a fraction such as 8/255") from None


def resolve_config(cls: type[C], config_file: str | Path | None, overrides: dict[str, Any]) -> C:
    """Build ``cls`` from its defaults, then the YAML file's keys, then the options the user gave (non-None)."""
    values: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if config_file is not None:
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
        unknown = set(doc) - names - {"partcli_version"}
        if unknown:
            raise PartcliError(f"--config {path}: unknown key(s) {', '.join(sorted(unknown))}")
        types = {f.name: f.type for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        values.update({k: _yaml_value(v, types[k], f"--config {path}: {k}") for k, v in doc.items() if k in names})
    values.update({k: v for k, v in overrides.items() if v is not None and k in names})
    return cls(**values)  # type: ignore[call-arg]


def _yaml_value(value: Any, annotation: Any, where: str) -> Any:
    """Check a YAML value against its field's annotation (a string such as "int" or "str | None").

    Numbers may be written as fractions ("8/255") for float fields; ints are accepted for floats. Annotations
    other than str, int, float and bool (optionally "| None") are passed through unchecked.
    """
    kinds = [k.strip() for k in str(annotation).split("|")]
    if value is None:
        if "None" in kinds:
            return None
        raise PartcliError(f"{where} must not be empty")
    base = [k for k in kinds if k != "None"]
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
        return value
    article = "an" if kind == "int" else "a"
    hint = " (YAML reads on/off/yes/no as booleans: quote the word)" if kind == "str" and isinstance(value, bool) else ""
    raise PartcliError(f"{where}: expected {article} {kind}, got {value!r}{hint}")


def write_config(path: Path, config: Any, extra: dict[str, Any] | None = None) -> None:
    doc = dataclasses.asdict(config)
    doc.update(extra or {})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
