"""A sweep's definition: its fixed options, its stages of swept values and each stage's pick rule.

Values come as text (``--set lr=0.1``, ``--grid wd=1e-4,5e-4``, ``--stage "cseg=0.1,0.2 beta=1"``) and are checked
with the rules of the training option they name (``partcli.config.check_value``), so ``eps=8/255`` or
``lr=abc`` behave as on the command line of ``train`` and in a ``--config`` file. Paths are made absolute, so a
definition means the same files from any working directory; ``sweep.yaml`` records it (``to_dict``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from partcli.config import check_value, read_config_file
from partcli.errors import PartcliError
from partcli.options import parse_fraction
from partcli.train.config import TrainConfig
from partcli.train.run_files import PATH_FIELDS, with_absolute_paths

PICK_RULES = ("adv", "clean-at-adv", "none")
DEFAULT_PICK = "adv"
DEFAULT_MARGIN = 0.01
# Options a sweep sets itself (each point's run folder under --out; the dataset of --data), or that only a
# resumed run writes: they cannot be set or swept.
NOT_SWEPT = {"out": "each point's run folder lies under the sweep's --out",
             "data": "give the dataset with --data",
             "replanned": "it is written by a resumed run whose --epochs changed"}
# Where a run computes, not what: may differ between invocations of one sweep (e.g. a cluster job per point).
WHERE_IT_RUNS = ("device", "workers")
FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
NONE_WORDS = ("none", "null")


@dataclass
class SweepDefinition:
    """What ``partcli sweep`` was asked to do (everything but where it writes and which point it runs).

    ``stages``: in order, each a mapping of option name to its values (the stage's points are their cartesian
    product, the first key varying slowest). ``picks``: one rule per stage (``PICK_RULES``). ``target_adv``:
    the baseline's validation adversarial accuracy (a fraction) for the ``clean-at-adv`` rule.
    """

    data: str
    stages: list[dict[str, list[Any]]]
    config: str | None = None
    sets: dict[str, Any] = field(default_factory=dict)
    picks: list[str] = field(default_factory=list)
    target_adv: float | None = None
    margin: float = DEFAULT_MARGIN

    def to_dict(self) -> dict[str, Any]:
        """The YAML document of ``sweep.yaml``."""
        return {"config": self.config, "data": self.data, "sets": dict(self.sets),
                "stages": [{k: list(v) for k, v in stage.items()} for stage in self.stages],
                "picks": list(self.picks), "target_adv": self.target_adv, "margin": self.margin}

    def swept_keys(self) -> list[str]:
        """Every swept option, in the order the stages name them."""
        return list(dict.fromkeys(k for stage in self.stages for k in stage))


def build_definition(data: str | Path | None, *, config: str | Path | None = None, sets: list[str] = (),
                     grids: list[str] = (), stages: list[str] = (), picks: list[str] = (),
                     target_adv: float | str | None = None, margin: float | str = DEFAULT_MARGIN) -> SweepDefinition:
    """A checked definition from the command line's texts: ``sets`` ``KEY=VALUE``, ``grids`` ``KEY=V1,V2`` (one
    stage together), ``stages`` ``"K=V1,V2 K2=..."`` (one stage each). ``data`` may be left to the ``--config``
    file's ``data``."""
    if grids and stages:
        raise PartcliError("--grid and --stage: give one stage as --grid KEY=V1,V2 (repeatable), or stages as "
                           "--stage \"KEY=V1,V2 ...\", not both")
    if not grids and not stages:
        raise PartcliError("--grid or --stage is required: the options to sweep, e.g. --grid lr=0.1,0.05,0.02")
    fixed = _parse_sets(sets)
    parsed = [_parse_stage(list(grids), "--grid")] if grids else [_parse_stage(s.split(), "--stage") for s in stages]
    config_path = str(Path(config).resolve()) if config is not None else None
    if data is None and config_path is not None:
        data = read_config_file(TrainConfig, config_path).get("data") or None
    if not data:
        raise PartcliError("--data is required: a prepared dataset folder")
    return SweepDefinition(data=str(Path(data).resolve()), stages=parsed, config=config_path, sets=fixed,
                           picks=_pick_rules(list(picks), len(parsed)),
                           target_adv=_target(target_adv, list(picks)), margin=_margin(margin))


def base_values(definition: SweepDefinition) -> dict[str, Any]:
    """The options every point shares: the ``--config`` file's, then ``--set``'s, then ``--data``."""
    values = read_config_file(TrainConfig, definition.config) if definition.config else {}
    values.update(definition.sets)
    values["data"] = definition.data
    return values


def differing_definition(stored: dict[str, Any], definition: SweepDefinition) -> str | None:
    """The first entry of ``sweep.yaml`` that ``definition`` changes (None: the same sweep); ``--set`` options of
    ``WHERE_IT_RUNS`` may differ."""
    mine = definition.to_dict()
    for doc in (stored, mine):
        doc["sets"] = {k: v for k, v in (doc.get("sets") or {}).items() if k not in WHERE_IT_RUNS}
    return next((key for key in mine if stored.get(key) != mine[key]), None)


def parse_value(key: str, text: str, where: str) -> Any:
    """One value typed for option ``key``, checked by the option's own rules.

    Options with their own parser (``eps``, ``workers``) and text options take the text as typed; others read it
    as a YAML scalar first (``10``, ``0.1``, ``true``), and ``none`` is None for options that may be empty.
    """
    f = FIELDS[key]
    kinds = [k.strip() for k in str(f.type).split("|")]
    if "None" in kinds and text.lower() in NONE_WORDS:
        value: Any = None
    elif (f.metadata.get("option") and f.metadata["option"].parse) or "str" in kinds:
        value = text
    else:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
    value = check_value(f, value, where)
    if key in PATH_FIELDS and value:  # as the run's config.yaml will hold it
        value = getattr(with_absolute_paths(TrainConfig(**{key: value})), key)
    return value


def _option_name(key: str, where: str) -> str:
    name = key.replace("-", "_")
    if name not in FIELDS:
        raise PartcliError(f"{where} {key}: not an option of `partcli train` (see `partcli train --help`)")
    if name in NOT_SWEPT:
        raise PartcliError(f"{where} {key}: cannot be set or swept; {NOT_SWEPT[name]}")
    return name


def _split_entry(entry: str, where: str, example: str) -> tuple[str, str]:
    key, sep, values = entry.partition("=")
    if not sep or not key.strip():
        raise PartcliError(f"{where} {entry!r}: expected {example}")
    return _option_name(key.strip(), where), values


def _parse_sets(entries: list[str]) -> dict[str, Any]:
    fixed: dict[str, Any] = {}
    for entry in entries:
        key, text = _split_entry(entry, "--set", "KEY=VALUE, e.g. --set adv=pgd")
        if key in fixed:
            raise PartcliError(f"--set {key}: given twice; give each option once")
        fixed[key] = parse_value(key, text.strip(), f"--set {key}")
    return fixed


def _parse_stage(entries: list[str], where: str) -> dict[str, list[Any]]:
    if not entries:
        raise PartcliError(f"{where} '': expected KEY=V1,V2,... entries, e.g. {where} \"lr=0.1,0.05\"")
    stage: dict[str, list[Any]] = {}
    for entry in entries:
        key, text = _split_entry(entry, where, "KEY=V1,V2,..., e.g. lr=0.1,0.05,0.02")
        if key in stage:
            raise PartcliError(f"{where} {key}: given twice in one stage; list all its values once ({key}=V1,V2)")
        texts = [t.strip() for t in text.split(",")]
        if not text.strip() or any(not t for t in texts):
            raise PartcliError(f"{where} {key}={text}: an empty value; expected {key}=V1,V2,...")
        values = [parse_value(key, t, f"{where} {key}") for t in texts]
        repeated = next((t for t, v in zip(texts, values) if values.count(v) > 1), None)
        if repeated is not None:
            raise PartcliError(f"{where} {key}: the value {repeated} is given twice; list each value once")
        stage[key] = values
    return stage


def _pick_rules(picks: list[str], n_stages: int) -> list[str]:
    for rule in picks:
        if rule not in PICK_RULES:
            raise PartcliError(f"--pick {rule!r}: expected one of {', '.join(PICK_RULES)}")
    if len(picks) not in (0, 1, n_stages):
        raise PartcliError(f"--pick: {len(picks)} rules for {n_stages} stages; give one rule for every stage, or "
                           "one per stage in order")
    rules = picks * n_stages if len(picks) == 1 else picks or [DEFAULT_PICK] * n_stages
    if "none" in rules[:-1]:
        raise PartcliError(f"--pick none: stage {rules.index('none') + 1} is not the last, and later stages start "
                           "from its pick; use adv or clean-at-adv there")
    return rules


def _target(target_adv: float | str | None, picks: list[str]) -> float | None:
    if target_adv is None:
        if "clean-at-adv" in picks:
            raise PartcliError("--pick clean-at-adv needs --target-adv: the validation adversarial accuracy to "
                               "match, as a fraction (e.g. 0.42)")
        return None
    if "clean-at-adv" not in picks:
        raise PartcliError("--target-adv: only the clean-at-adv rule uses it; add --pick clean-at-adv or drop it")
    value = parse_fraction(target_adv, "--target-adv")
    if not 0.0 <= value <= 1.0:
        raise PartcliError(f"--target-adv {target_adv}: expected a fraction in [0, 1] (e.g. 0.42 for 42 %)")
    return value


def _margin(margin: float | str) -> float:
    value = parse_fraction(margin, "--margin")
    if not 0.0 <= value <= 1.0:
        raise PartcliError(f"--margin {margin}: expected a fraction in [0, 1] (e.g. 0.01 for one point)")
    return value
