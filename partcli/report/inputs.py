"""What ``partcli report`` reads: run folders, results CSVs (of attack, evaluate and robustness), hygiene
checklists and sweep summaries (``sweep.csv`` of ``partcli sweep``, known by its columns) found under the given
paths.

Anything else is skipped with a reason that the report lists: a CSV another tool wrote, a run folder without
metrics, a prepared dataset, rows of a suite the report has no section for. Paths inside the CSVs (checkpoint,
dataset) are tried as written, then below each folder above the CSV, so a report can be made from another
working directory than the one the attacks ran in.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from partcli.attacks.registry import suite_names
from partcli.data.contract import read_dataset_info
from partcli.errors import PartcliError
from partcli.attacks.hygiene import HYGIENE_SUFFIX
from partcli.evaluate.results_csv import PGD_SETTINGS, RESULT_COLUMNS, malformed_note, read_results_file
from partcli.robustness.suite import suites_of
from partcli.sweep.summary import SummaryRow, is_summary_header, read_summary
from partcli.train.run_files import METRIC_COLUMNS

# The suites each row family holds; rows of any other suite are skipped. A new report section for another
# kind of results adds its family here.
ROW_FAMILIES = {"evaluate": ("clean",), "attack": suite_names(), "robustness": suites_of("all")}
ROW_KEY = ["checkpoint_id", "dataset_id", "split", "suite", "attack", "norm", "eps"]  # *_id: the file found, or as written
NUMERIC = ["eps", "n", "clean_acc", "adv_acc", "clean_pixel_acc", "adv_pixel_acc", "seconds", *PGD_SETTINGS,
           "severity", "shape_bias", "bg_gap", "shift_seed"]  # the last four: robustness's (empty in other rows)
RENAMED = {"seed": "shift_seed"}  # robustness's generation seed; ``seed`` is the model's (``tables.annotate``)
ADDED_COLUMNS = ["source", "checkpoint_id", "dataset_id", "dataset_name", "family"]
SAMPLES_SUFFIX = ".samples.csv"  # attack's per-sample outcomes: companions of a results CSV, not results


@dataclass
class Run:
    """One run folder: its configuration (empty when config.yaml is missing) and its metrics rows."""

    path: Path
    name: str
    config: dict[str, Any]
    metrics: pd.DataFrame


@dataclass
class Checklist:
    """The hygiene checklist of one ``partcli attack`` run."""

    path: Path
    meta: dict[str, Any]
    checks: list[dict[str, str]]


@dataclass
class Sweep:
    """The summary of one ``partcli sweep``: its swept options and one row per point."""

    path: Path
    name: str  # the sweep folder's name in the report
    keys: list[str]
    rows: list[SummaryRow]


@dataclass
class ReportInputs:
    runs: list[Run] = field(default_factory=list)
    rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=[*RESULT_COLUMNS, *ADDED_COLUMNS]))
    checklists: list[Checklist] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<path>: <reason>", in the order found
    sources: list[Path] = field(default_factory=list)  # the results CSVs read
    sweeps: list[Sweep] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.runs and self.rows.empty and not self.checklists and not self.sweeps


def read_inputs(paths: list[str | Path]) -> ReportInputs:
    """Scan ``paths`` (folders, searched recursively, or files) for everything a report can use."""
    if not paths:
        raise PartcliError("report: give at least one folder or file (run folders, results CSVs)")
    for path in map(Path, paths):
        if not path.exists():
            raise PartcliError(f"{path}: no such file or folder")
    inputs, frames, seen = ReportInputs(), [], set()
    roots = [Path(p) for p in paths]
    for root in roots:
        for kind, path in _walk(root, inputs.skipped):
            if path.resolve() in seen:  # reached through two of the paths given
                continue
            seen.add(path.resolve())
            name = _display_name(path, roots)
            if kind == "run":
                run = _read_run(path, name, inputs.skipped)
                if run is not None:
                    inputs.runs.append(run)
            elif kind == "csv" and _is_sweep_summary(path):
                folder = path.parent.name if root.is_file() else _display_name(path.parent, roots)
                sweep = _read_sweep(path, folder, inputs.skipped)
                if sweep is not None:
                    inputs.sweeps.append(sweep)
            elif kind == "csv":
                frame = _read_results(path, inputs.skipped)
                if frame is not None:
                    frames.append(frame)
                    inputs.sources.append(path)
            else:
                checklist = _read_checklist(path, inputs.skipped)
                if checklist is not None:
                    inputs.checklists.append(checklist)
    if frames:
        inputs.rows = _keep_known_families(_dedupe(pd.concat(frames, ignore_index=True), inputs.skipped),
                                           inputs.skipped)
    return inputs


def resolve_near(path: str, source: Path) -> Path | None:
    """``path`` as written (relative to the working directory), else below a folder above ``source``."""
    candidate = Path(path)
    if candidate.exists():
        return candidate
    if not candidate.is_absolute():
        for parent in source.resolve().parents:
            if (parent / candidate).exists():
                return parent / candidate
    return None


def locate_checkpoint(checkpoint: str, source: Path) -> Path | None:
    """Where a CSV's checkpoint is; a deleted ``RUN/checkpoints/*.pt`` whose run folder remains counts as there
    (its configuration is the run's config.yaml)."""
    found = resolve_near(checkpoint, source)
    path = Path(checkpoint)
    if found is None and path.parent.name == "checkpoints":
        run = resolve_near(str(path.parent.parent), source)
        found = None if run is None else run / "checkpoints" / path.name
    return found


def dataset_name(dataset: str, found: Path | None) -> str:
    """The name in the dataset's dataset.yaml, else the folder's name (the dataset may have moved)."""
    if found is not None:
        try:
            return read_dataset_info(found).name
        except PartcliError:
            pass
    return Path(dataset).name or dataset


# -- scanning ---------------------------------------------------------------------------------------------
def _walk(root: Path, skipped: list[str]):
    """Yield ("run" | "csv" | "checklist", path) under ``root`` in a stable (sorted) order."""
    if root.is_file():
        if root.name == "metrics.csv":  # a run's metrics file given on its own: the run
            yield "run", root.parent
            return
        kind = _file_kind(root)
        if kind is None:
            skipped.append(f"{root}: not a results CSV or a hygiene checklist (*{HYGIENE_SUFFIX})")
        elif kind != "samples":
            yield kind, root
        return
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "checkpoints")
        if "dataset.yaml" in files:
            skipped.append(f"{here}: a prepared dataset, not results")
            dirs[:] = []
            continue
        if "metrics.csv" in files or "config.yaml" in files:
            yield "run", here
        for name in sorted(files):
            if name == "metrics.csv":
                continue  # the run's, read with it
            kind = _file_kind(here / name)
            if kind in ("csv", "checklist"):
                yield kind, here / name


def _file_kind(path: Path) -> str | None:
    if path.name.endswith(SAMPLES_SUFFIX):
        return "samples"
    if path.name.endswith(HYGIENE_SUFFIX):
        return "checklist"
    if path.suffix.lower() == ".csv":
        return "csv"
    return None


def _display_name(path: Path, roots: list[Path]) -> str:
    """A run's name in the report: its path below the folder given on the command line (with that folder's
    name when several were given)."""
    for root in roots:
        if root.is_dir() and path.resolve().is_relative_to(root.resolve()):
            rel = path.resolve().relative_to(root.resolve())
            base = Path(root.resolve().name) if len(roots) > 1 or rel == Path(".") else Path()
            return str(base / rel)
    return str(path)


# -- run folders ------------------------------------------------------------------------------------------
def _read_run(path: Path, name: str, skipped: list[str]) -> Run | None:
    metrics_path = path / "metrics.csv"
    if not metrics_path.is_file():
        skipped.append(f"{path}: a run folder without metrics.csv (no epoch finished?); no training curves")
        return None
    try:
        metrics = pd.read_csv(metrics_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        skipped.append(f"{metrics_path}: unreadable CSV; no training curves")
        return None
    if "epoch" not in metrics.columns or not set(metrics.columns) <= set(METRIC_COLUMNS):
        skipped.append(f"{metrics_path}: not a partcli metrics file (columns {', '.join(map(str, metrics.columns))})")
        return None
    if metrics.empty:
        skipped.append(f"{metrics_path}: no epochs yet; no training curves")
        return None
    metrics = metrics.apply(pd.to_numeric, errors="coerce")
    return Run(path, name, _read_config(path / "config.yaml", skipped), metrics)


def _read_config(path: Path, skipped: list[str]) -> dict[str, Any]:
    if not path.is_file():
        skipped.append(f"{path}: missing; the run's curves are drawn without its configuration")
        return {}
    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict):
        skipped.append(f"{path}: unreadable; the run's curves are drawn without its configuration")
        return {}
    return doc


# -- results CSVs -----------------------------------------------------------------------------------------
def _read_results(path: Path, skipped: list[str]) -> pd.DataFrame | None:
    try:
        parsed = read_results_file(path)
    except UnicodeDecodeError:
        skipped.append(f"{path}: unknown CSV kind (not text)")
        return None
    header = parsed.header
    if tuple(header[:len(RESULT_COLUMNS)]) != RESULT_COLUMNS:
        shown = ", ".join(header[:6]) + (", …" if len(header) > 6 else "")
        skipped.append(f"{path}: unknown CSV kind (columns {shown or 'none'}); partcli reads the results CSVs of "
                       "attack, evaluate and robustness")
        return None
    if parsed.malformed:
        skipped.append(malformed_note(path, parsed))
    frame = pd.DataFrame([cells for _, cells in parsed.rows], columns=header, dtype=str)
    if frame.empty:
        skipped.append(f"{path}: no rows")
        return None
    frame = frame.rename(columns=RENAMED)
    if "norm" not in frame:
        frame["norm"] = ""
    for column in NUMERIC:
        frame[column] = pd.to_numeric(frame[column], errors="coerce") if column in frame else float("nan")
    frame["source"] = str(path)
    checkpoints = {c: locate_checkpoint(c, path) for c in frame["checkpoint"].unique()}
    frame["checkpoint_id"] = frame["checkpoint"].map(lambda c: str(checkpoints[c].resolve()) if checkpoints[c] else c)
    datasets = {d: resolve_near(d, path) for d in frame["dataset"].unique()}
    frame["dataset_id"] = frame["dataset"].map(lambda d: str(datasets[d].resolve()) if datasets[d] else d)
    frame["dataset_name"] = frame["dataset"].map({d: dataset_name(d, found) for d, found in datasets.items()})
    return frame


def _dedupe(rows: pd.DataFrame, skipped: list[str]) -> pd.DataFrame:
    """Keep the last row of each (checkpoint, dataset, split, suite, attack, eps): CSVs are appended to."""
    key = rows[ROW_KEY].astype(str)
    repeated = key.duplicated(keep="last")
    if repeated.any():
        skipped.append(f"{int(repeated.sum())} repeated result row(s) (same checkpoint, dataset, split, suite, "
                       "attack, norm and ε): the last one of each is reported")
    return rows[~repeated].reset_index(drop=True)


def _keep_known_families(rows: pd.DataFrame, skipped: list[str]) -> pd.DataFrame:
    family = {suite: name for name, suites in ROW_FAMILIES.items() for suite in suites}
    rows = rows.assign(family=rows["suite"].map(family))
    for (source, suite), group in rows[rows["family"].isna()].groupby(["source", "suite"], sort=False):
        skipped.append(f"{source}: {len(group)} row(s) of suite {suite!r}, which this report has no section for")
    return rows[rows["family"].notna()].reset_index(drop=True)


# -- sweep summaries ------------------------------------------------------------------------------------------
def _is_sweep_summary(path: Path) -> bool:
    try:
        with path.open(newline="") as fh:
            return is_summary_header(next(csv.reader(fh), []))
    except (UnicodeDecodeError, csv.Error):
        return False


def _read_sweep(path: Path, name: str, skipped: list[str]) -> Sweep | None:
    try:
        keys, rows = read_summary(path)
    except ValueError as exc:  # a cell that is not a number, or a row of the wrong length
        skipped.append(f"{path}: a malformed sweep summary ({exc})")
        return None
    if not rows:
        skipped.append(f"{path}: a sweep summary without points")
        return None
    return Sweep(path, name, keys, rows)


# -- hygiene checklists -----------------------------------------------------------------------------------
def _read_checklist(path: Path, skipped: list[str]) -> Checklist | None:
    try:
        doc = json.loads(path.read_text())
        checks = [{k: str(c[k]) for k in ("name", "status", "message")} for c in doc["checks"]]
        return Checklist(path, {k: v for k, v in doc.items() if k != "checks"}, checks)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        skipped.append(f"{path}: not a hygiene checklist written by partcli attack")
        return None
