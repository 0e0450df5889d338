"""The points of a sweep, their run folders and their training configurations.

Points are numbered from 0 over all stages in order (as ``--list`` shows them). A point's configuration is built
from the dataclass defaults < the ``--config`` file < ``--set`` < the values picked in the earlier stages < the
point's own values < its run folder ``OUT/s<stage>-p<point>-<key>=<value>...``.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from partcli.config import names_library_weights
from partcli.errors import PartcliError
from partcli.sweep.config import SweepDefinition, base_values
from partcli.train.config import TrainConfig
from partcli.train.run_files import with_absolute_paths
from partcli.train.validate import validate_config

NAME_VALUE_CHARS = 40  # the longest value text in a run folder's name (paths keep their end)


@dataclass(frozen=True)
class Point:
    index: int  # over all stages, from 0
    stage: int  # from 0 (shown from 1)
    values: dict[str, Any]  # the stage's options at this point

    @property
    def name(self) -> str:
        """The run folder's name: readable, unique (the index) and safe on any file system."""
        values = "-".join(f"{k}={_name_text(v)}" for k, v in self.values.items())
        return f"s{self.stage + 1}-p{self.index}-{values}"


def plan_points(definition: SweepDefinition) -> list[Point]:
    """Every point of every stage: the cartesian product of a stage's values, the first option varying slowest."""
    points: list[Point] = []
    for stage, options in enumerate(definition.stages):
        for combo in itertools.product(*options.values()):
            points.append(Point(len(points), stage, dict(zip(options, combo))))
    return points


def point_config(definition: SweepDefinition, point: Point, picked: dict[str, Any], out: str | Path,
                 base: dict[str, Any] | None = None) -> TrainConfig:
    """The training configuration of ``point`` given the values ``picked`` in the earlier stages (paths absolute).

    ``base``: ``base_values(definition)``, when the caller has read it already.
    """
    values = dict(base_values(definition) if base is None else base)
    values.update(picked)
    values.update(point.values)
    values["out"] = str(Path(out) / point.name)
    return with_absolute_paths(TrainConfig(**values))


def validate_points(definition: SweepDefinition, points: list[Point], out: str | Path) -> None:
    """Check every configuration a point may get, whatever the earlier stages pick, before any run starts."""
    base = base_values(definition)
    for point in points:
        for picked in _possible_picks(points, point.stage):
            cfg = point_config(definition, point, picked, out, base)
            try:
                validate_config(cfg)
                _check_files(cfg)
            except PartcliError as exc:
                raise PartcliError(f"sweep point {point.index} ({describe_values(point.values)}): {exc}") from None


def _possible_picks(points: list[Point], stage: int) -> Iterator[dict[str, Any]]:
    """Each combination of one point per earlier stage, as the values those picks would carry."""
    earlier = [[p for p in points if p.stage == s] for s in range(stage)]
    for combo in itertools.product(*earlier):
        picked: dict[str, Any] = {}
        for p in combo:
            picked.update(p.values)
        yield picked


def _check_files(cfg: TrainConfig) -> None:
    """The weight files a point starts from exist (``--pretrained imagenet`` names a library's weights)."""
    for name in ("init", "pretrained"):
        path = getattr(cfg, name)
        if path and not names_library_weights(path) and not Path(path).is_file():
            raise PartcliError(f"--{name} {path}: file not found")


def describe_values(values: dict[str, Any]) -> str:
    """``lr=0.1 wd=0.0005``: a point's values in messages and tables."""
    return " ".join(f"{k}={format_value(v)}" for k, v in values.items())


def format_value(value: Any) -> str:
    """A swept value as ``sweep.csv`` and the tables show it."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    return str(value)


def _name_text(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else format_value(value)
    text = re.sub(r"[^A-Za-z0-9._+=-]+", "_", text).strip("_") or "_"
    return text[-NAME_VALUE_CHARS:]
