"""Running a sweep: each point one training run (``run_training``), in this process, one after another.

The sweep folder ``OUT`` holds ``sweep.yaml`` (the definition, so that a rerun, ``--list`` and ``--point`` can
check they mean the same sweep), ``sweep.csv`` (``partcli.sweep.summary``) and one run folder per point.
What has been done is read from the run folders alone, so a sweep can be killed and rerun, or spread over
cluster jobs (one ``--point`` each), at any moment:

- done: ``checkpoints/last.pt`` exists and ``metrics.csv`` has ``epochs`` rows: skipped;
- partial: ``last.pt`` exists with fewer epochs: continued as ``--resume`` would;
- todo: no ``last.pt`` (never started, or killed in its first epoch): started afresh in that folder.

A run folder whose ``config.yaml`` is not the point's configuration (the sweep was changed) is refused, naming
the folder and the option, and never overwritten.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock

from partcli.config import read_yaml_mapping
from partcli.data.contract import read_dataset_info
from partcli.errors import PartcliError, writing
from partcli.progress import info
from partcli.settings_history import with_added_settings
from partcli.sweep.config import WHERE_IT_RUNS, SweepDefinition, base_values, differing_definition
from partcli.sweep.pick import Pick, Score, pick_point
from partcli.sweep.plan import Point, describe_values, format_value, plan_points, point_config, validate_points
from partcli.sweep.summary import SUMMARY_NAME, SummaryRow, write_atomically, write_summary
from partcli.train.config import TrainConfig
from partcli.train.loop import run_training
from partcli.train.run_files import PATH_FIELDS, selection_metric
from partcli.version import __version__

LOCK_NAME = SUMMARY_NAME + ".lock"  # an empty file beside sweep.csv (may be deleted when no job runs)

DEFINITION_NAME = "sweep.yaml"
# Compared between a run folder's config.yaml and its point: all but the folder's own place and where it ran.
COMPARED = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("out", *WHERE_IT_RUNS))


@dataclass
class PointState:
    """A point and what its run folder holds."""

    point: Point
    run: Path
    config: TrainConfig | None  # None while an earlier stage has no pick yet
    status: str  # done, partial or todo
    best_epoch: int | None = None
    val_clean_acc: float | None = None
    val_adv_acc: float | None = None
    picked: bool | None = None  # None: its stage is unfinished or picks nothing


@dataclass
class StageState:
    stage: int  # from 0
    rule: str
    points: list[PointState]
    pick: Pick | None  # None while unfinished

    @property
    def unfinished(self) -> list[int]:
        return [p.point.index for p in self.points if p.status != "done"]

    @property
    def picked(self) -> PointState | None:
        return next((p for p in self.points if p.picked), None)


@dataclass
class SweepState:
    """Every point's status and results, and each finished stage's pick (what ``--list`` and the summary show)."""

    definition: SweepDefinition
    out: Path
    stages: list[StageState]

    @property
    def points(self) -> list[PointState]:
        return [p for s in self.stages for p in s.points]

    @property
    def keys(self) -> list[str]:
        return self.definition.swept_keys()


def run_sweep(definition: SweepDefinition, out: str | Path, *, point: int | None = None,
              overwrite: bool = False) -> SweepState:
    """Python API of ``partcli sweep``: train every point (or only ``point``) that is not done; return the state.

    Everything is checked before the first run: every configuration a point may get, the dataset, ``--init``
    files, and that ``out`` holds this sweep (``overwrite``: accept a changed definition; run folders whose
    configuration changed are still refused) or nothing. Each stage after the first starts from the values
    picked in the stages before it; with ``point``, those stages must be finished.
    """
    out = Path(out)
    points = _checked_points(definition, out, point)
    _check_out(out, definition, overwrite, listing=False)
    state = sweep_state(definition, out)  # refuses a run folder whose configuration changed, before any run
    if point is not None:
        _check_earlier_stages(state, points[point])
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
        write_atomically(out / DEFINITION_NAME, yaml.safe_dump({**definition.to_dict(),
                                                                "partcli_version": __version__}, sort_keys=False))
    state = _rewrite_summary(definition, out)
    for todo in points if point is None else [points[point]]:
        try:
            _run_point(state.points[todo.index])
        except BaseException:  # a failed or interrupted run: the summary says what it left (partial or todo)
            with contextlib.suppress(PartcliError):  # the run's own error is the one to show
                _rewrite_summary(definition, out)
            raise
        state = _rewrite_summary(definition, out)
    return state


def list_sweep(definition: SweepDefinition, out: str | Path) -> SweepState:
    """The points, their run folders and status (``partcli sweep --list``); writes nothing."""
    out = Path(out)
    _checked_points(definition, out, None)
    _check_out(out, definition, overwrite=False, listing=True)
    return sweep_state(definition, out)


def sweep_state(definition: SweepDefinition, out: Path) -> SweepState:
    """Read every point's run folder; pick in each finished stage whose earlier stages are picked."""
    points = plan_points(definition)
    base = base_values(definition)
    picked: dict[str, Any] | None = {}
    stages = []
    for index, rule in enumerate(definition.picks):
        states = []
        for p in (p for p in points if p.stage == index):
            cfg = None if picked is None else point_config(definition, p, picked, out, base)
            states.append(_point_state(p, out / p.name, cfg))
        stage = StageState(index, rule, states, None)
        if picked is not None and not stage.unfinished:
            scores = [Score(s.point.index, s.val_clean_acc, s.val_adv_acc) for s in states
                      if s.val_clean_acc is not None]
            stage.pick = (pick_point(scores, rule, definition.target_adv, definition.margin) if scores else
                          Pick(None, "no run chose a best epoch (see their metrics.csv)"))
            for s in states:
                s.picked = None if stage.pick.point is None else s.point.index == stage.pick.point
        chosen = stage.picked
        picked = None if picked is None or chosen is None else {**picked, **chosen.point.values}
        stages.append(stage)
    return SweepState(definition, out, stages)


def _rewrite_summary(definition: SweepDefinition, out: Path) -> SweepState:
    """Read the sweep's state from its run folders and write it to ``sweep.csv``, under ``sweep.csv.lock``: parallel
    ``--point`` jobs then write one after the other, each from a state read after the previous write, so the file
    never goes back to an older view of a point another job has finished."""
    with writing(out), FileLock(out / LOCK_NAME):
        state = sweep_state(definition, out)
        write_summary(out / SUMMARY_NAME, state.keys, summary_rows(state))
    return state


def summary_rows(state: SweepState) -> list[SummaryRow]:
    return [SummaryRow(s.point.stage + 1, s.point.index, s.run.name, s.status,
                       {k: format_value(v) for k, v in s.point.values.items()}, s.best_epoch, s.val_clean_acc,
                       s.val_adv_acc, s.picked) for s in state.points]


# -- checks ---------------------------------------------------------------------------------------------------
def _checked_points(definition: SweepDefinition, out: Path, point: int | None) -> list[Point]:
    points = plan_points(definition)
    if point is not None and not 0 <= point < len(points):
        raise PartcliError(f"--point {point}: the sweep has points 0 to {len(points) - 1} (see --list)")
    try:
        read_dataset_info(definition.data)
    except PartcliError as exc:
        raise PartcliError(f"--data {exc}") from None
    validate_points(definition, points, out)
    if "clean-at-adv" in definition.picks:
        _check_adversarial(definition, points)
    return points


def _check_adversarial(definition: SweepDefinition, points: list[Point]) -> None:
    """A ``clean-at-adv`` stage whose runs are all clean has no adversarial accuracy to compare."""
    base_adv = base_values(definition).get("adv", TrainConfig.adv)
    for stage, rule in enumerate(definition.picks):
        possible = {base_adv} | {p.values["adv"] for p in points if p.stage <= stage and "adv" in p.values}
        if rule == "clean-at-adv" and possible == {"none"}:
            raise PartcliError(f"--pick clean-at-adv: the runs of stage {stage + 1} are clean (adv none), so they "
                               "have no adversarial accuracy; use --pick adv, or --set adv=pgd")


def _check_out(out: Path, definition: SweepDefinition, overwrite: bool, listing: bool) -> None:
    if out.exists() and not out.is_dir():
        raise PartcliError(f"--out {out}: exists and is not a folder")
    stored_path = out / DEFINITION_NAME
    if stored_path.is_file():
        stored = read_yaml_mapping(stored_path)
        if stored is None:
            raise PartcliError(f"{stored_path}: unreadable; delete it to redefine the sweep in --out {out}")
        changed = differing_definition(stored, definition)
        if changed is not None and not (overwrite and not listing):
            raise PartcliError(f"--out {out}: holds another sweep (its {DEFINITION_NAME} has a different {changed}); "
                               "give the same options, another --out, or --overwrite to redefine it")
    elif out.is_dir() and any(out.iterdir()) and not overwrite and not listing:
        raise PartcliError(f"--out {out}: exists, is not empty and holds no sweep ({DEFINITION_NAME}); choose "
                           "another folder or pass --overwrite")


def _check_earlier_stages(state: SweepState, point: Point) -> None:
    """``--point`` of a later stage needs the picks of the stages before it."""
    for stage in state.stages[:point.stage]:
        if stage.unfinished:
            todo = ", ".join(map(str, stage.unfinished))
            raise PartcliError(f"--point {point.index}: stage {point.stage + 1} starts from the pick of stage "
                               f"{stage.stage + 1}, whose point(s) {todo} are not finished; run them first "
                               f"(--point {stage.unfinished[0]}, ...)")


# -- run folders ----------------------------------------------------------------------------------------------
def _point_state(point: Point, run: Path, cfg: TrainConfig | None) -> PointState:
    stored = _stored_config(run)
    if cfg is not None and stored is not None:
        _check_same_config(run, stored, cfg)
    epochs = cfg.epochs if cfg is not None else (stored or {}).get("epochs")
    rows = _metrics_rows(run)
    if not (run / "checkpoints" / "last.pt").is_file():
        return PointState(point, run, cfg, "todo")
    status = "done" if isinstance(epochs, int) and len(rows) >= epochs else "partial"
    state = PointState(point, run, cfg, status)
    selection_cfg = cfg if cfg is not None or stored is None else TrainConfig(
        **{k: v for k, v in stored.items() if k in TrainConfig.__dataclass_fields__})
    if rows and selection_cfg is not None:
        scores = [selection_metric(r, selection_cfg) for r in rows]
        if max(scores) < 0:  # no epoch can be chosen yet (segmenter-only or not validated)
            return state
        best = rows[scores.index(max(scores))]  # the first epoch reaching the maximum, as best.pt is chosen
        state.best_epoch = int(best["epoch"])
        state.val_clean_acc = _number(best.get("val_clean_acc"))
        state.val_adv_acc = _number(best.get("val_adv_acc"))
    return state


def _stored_config(run: Path) -> dict[str, Any] | None:
    path = run / "config.yaml"
    if not path.is_file():
        return None
    doc = read_yaml_mapping(path)
    if doc is None:
        raise PartcliError(f"{path}: unreadable; delete the run folder {run} to run its point afresh")
    return with_added_settings(doc)


def _check_same_config(run: Path, stored: dict[str, Any], cfg: TrainConfig) -> None:
    for name in COMPARED:
        mine, theirs = getattr(cfg, name), stored.get(name)
        if not _same_setting(name, mine, theirs):
            flag = "--" + name.replace("_", "-")
            raise PartcliError(f"{run}: was trained with {flag} {theirs}, but this sweep gives the point {flag} "
                               f"{mine} (the sweep changed?); delete that run folder, or use another --out")


def _same_setting(name: str, mine: Any, theirs: Any) -> bool:
    """Equal settings: paths as absolute paths, floats up to rounding."""
    if name in PATH_FIELDS and mine and theirs:
        return Path(mine).resolve() == Path(theirs).resolve()
    if isinstance(mine, float) and isinstance(theirs, (int, float)) and not isinstance(theirs, bool):
        return math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=1e-12)
    return mine == theirs


def _metrics_rows(run: Path) -> list[dict[str, str]]:
    path = run / "metrics.csv"
    if not path.is_file():
        return []
    try:
        with path.open(newline="") as fh:
            return [r for r in csv.DictReader(fh) if r.get("epoch")]
    except (csv.Error, UnicodeDecodeError):
        raise PartcliError(f"{path}: unreadable; delete the run folder {run} to run its point afresh") from None


def _number(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def _run_point(state: PointState) -> None:
    name = f"point {state.point.index} ({state.run.name})"
    if state.status == "done":
        info(f"{name}: finished, skipped")
        return
    if state.config is None:  # points run in order, or after _check_earlier_stages: an earlier stage picked none
        stage = state.point.stage
        raise PartcliError(f"{name}: stage {stage} picked no point, so stage {stage + 1} cannot start from it "
                           "(see --list)")
    if state.status == "partial":
        info(f"{name}: continuing the run in {state.run}")
        run_training(state.config, resume=True, given=set(COMPARED) | set(WHERE_IT_RUNS))
    else:
        info(f"{name}: training")
        run_training(state.config, overwrite=True)


def describe_picks(state: SweepState) -> list[str]:
    """One line per stage: its pick and why, or what it waits for; then the configuration picked so far."""
    lines, picked = [], {}
    for stage in state.stages:
        head = f"stage {stage.stage + 1} (--pick {stage.rule})"
        chosen = stage.picked
        if stage.pick is None:
            waiting = ", ".join(map(str, stage.unfinished))
            lines.append(f"{head}: not finished (point(s) {waiting} to run)")
        elif chosen is None:
            lines.append(f"{head}: {stage.pick.reason}")
        else:
            picked.update(chosen.point.values)
            lines.append(f"{head}: point {chosen.point.index} ({describe_values(chosen.point.values)}), "
                         f"{stage.pick.reason}; run {chosen.run}")
            if stage.pick.note:
                lines.append(f"  note: {stage.pick.note}")
    if picked:
        lines.append(f"picked configuration: {describe_values(picked)}")
    return lines
