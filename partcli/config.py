"""Typed configurations: dataclass defaults < YAML file < command-line options; resolved config written out."""
from __future__ import annotations

import dataclasses
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
    except (ValueError, ZeroDivisionError):
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
        except yaml.YAMLError:
            raise PartcliError(f"--config {path}: not valid YAML") from None
        if not isinstance(doc, dict):
            raise PartcliError(f"--config {path}: expected a mapping of option names to values")
        unknown = set(doc) - names - {"partcli_version"}
        if unknown:
            raise PartcliError(f"--config {path}: unknown key(s) {', '.join(sorted(unknown))}")
        values.update({k: v for k, v in doc.items() if k in names})
    values.update({k: v for k, v in overrides.items() if v is not None and k in names})
    return cls(**values)  # type: ignore[call-arg]


def write_config(path: Path, config: Any, extra: dict[str, Any] | None = None) -> None:
    doc = dataclasses.asdict(config)
    doc.update(extra or {})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
