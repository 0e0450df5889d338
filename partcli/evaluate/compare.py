"""``partcli compare``: statistics over training seeds from any partcli results CSV (paper Tables 2–4).

Rows are grouped by a checkpoint property (``arch``, ``adv``, ``seg_labels``, ``seg_frac``, ``backbone``... read
from the checkpoints the rows name: model, then train, then dataset section of their configuration) or, when no
checkpoint has such a property, by a column of the CSV. Within each benchmark (dataset name, split, suite, attack
or shift, eps) every checkpoint is one replicate (its last row counts when a file holds several); a group reports
the mean, a 95 % t-distribution confidence interval and, against the reference group, the p-value of Welch's
two-sample t-test (the paper's "two-sample t-test", without assuming equal variances).
"""
from __future__ import annotations

import fnmatch
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from partcli.errors import PartcliError, writing
from partcli.evaluate.results_csv import malformed_note, read_results_file
from partcli.files import atomic_write, check_can_create

if TYPE_CHECKING:
    from rich.table import Table

BENCHMARK = ("dataset_name", "split", "suite", "attack", "eps")
FRACTIONS = ("acc", "clean_acc", "adv_acc", "clean_pixel_acc", "adv_pixel_acc", "shape_bias", "bg_gap")
CONFIG_SECTIONS = ("model", "train", "dataset")
SUMMARY_COLUMNS = ("dataset", "split", "suite", "attack", "eps", "by", "group", "metric", "n_models", "mean", "sd",
                   "ci95_low", "ci95_high", "reference", "p_value")


@dataclass
class CompareResult:
    summary: pd.DataFrame  # one row per (benchmark, group), SUMMARY_COLUMNS
    groups: list[str]
    notes: list[str] = field(default_factory=list)


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float | None]:
    """Mean and half-width of its t-distribution confidence interval (None with fewer than two values)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()), None
    sem = values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * sem)


def welch_p(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sided p-value of Welch's t-test; None when a group has fewer than two values or both have no spread."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):  # (constant groups: rounding noise only)
        return None
    with warnings.catch_warnings():  # one constant group is fine for Welch; scipy warns about its rounding noise
        warnings.simplefilter("ignore", RuntimeWarning)
        p = stats.ttest_ind(a, b, equal_var=False).pvalue
    return None if np.isnan(p) else float(p)


def read_results(paths: list[str | Path]) -> tuple[pd.DataFrame, list[str]]:
    """The rows of every CSV, all cells as text (empty when absent), with the file and line each came from; and a
    note per file with malformed rows (skipped: a row cut off or edited by hand), naming their lines."""
    frames, skipped = [], []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise PartcliError(f"{path}: results CSV not found")
        try:
            parsed = read_results_file(path)
        except UnicodeDecodeError:
            raise PartcliError(f"{path}: not a readable CSV (not UTF-8 text)") from None
        missing = [c for c in ("checkpoint", "suite", "attack") if c not in parsed.header]
        if missing:
            raise PartcliError(f"{path}: not a partcli results CSV (no {', '.join(missing)} column)")
        if parsed.malformed:
            skipped.append(malformed_note(path, parsed))
        frame = pd.DataFrame([cells for _, cells in parsed.rows], columns=parsed.header, dtype=str)
        frames.append(frame.assign(_source=f"{path}", _line=[line for line, _ in parsed.rows]))
    frame = pd.concat(frames, ignore_index=True).fillna("")
    if frame.empty:
        raise PartcliError(f"{', '.join(map(str, paths))}: no result rows" + "".join(f"; {s}" for s in skipped))
    return frame, skipped


def check_summary_out(path: str | Path) -> None:
    """Refuse, before any work, an ``--out`` the summary could not be written to (nothing is created)."""
    path = Path(path)
    if path.is_dir():
        raise PartcliError(f"--out {path}: a folder; give the summary CSV's file name (e.g. {path / 'summary.csv'})")
    check_can_create(path)


def checkpoint_property(config: dict[str, Any], name: str) -> Any:
    """``name`` (dashes or underscores) from a checkpoint configuration's model, train or dataset section."""
    key = name.replace("-", "_")
    for section in CONFIG_SECTIONS:
        values = config.get(section)
        if isinstance(values, dict) and key in values:
            return values[key]
    raise KeyError(key)


def metric_values(frame: pd.DataFrame, metric: str) -> pd.Series:
    """The metric of every row as floats (NaN where the row has none). ``acc``: the accuracy under the row's
    attack or shift (``adv_acc``), or ``clean_acc`` for ``evaluate``'s clean rows."""
    if metric == "acc":
        text = frame["adv_acc"].where(frame["adv_acc"] != "", frame["clean_acc"].where(frame["suite"] == "clean", ""))
    elif metric in frame.columns and not metric.startswith("_"):
        text = frame[metric]
    else:
        columns = [c for c in frame.columns if not c.startswith("_")]
        raise PartcliError(f"--metric {metric!r}: not a column of the results (acc or one of {', '.join(columns)})")
    values = pd.to_numeric(text.replace("", np.nan), errors="coerce")
    bad = text[(text != "") & values.isna()]
    if len(bad):
        row = frame.loc[bad.index[0]]
        raise PartcliError(f"{row['_source']}:{row['_line']}: {metric} {bad.iloc[0]!r} is not a number")
    return values


def compare_results(paths: list[str | Path], by: str, metric: str = "acc", attacks: list[str] | None = None,
                    reference: str | None = None) -> CompareResult:
    """Python API of ``partcli compare``: per benchmark and group, mean ± 95 % CI and Welch's p vs ``reference``
    (default: the first group in file order). ``attacks``: glob patterns that keep only matching rows."""
    frame, notes = read_results(paths)
    if attacks:
        frame = frame[frame["attack"].map(lambda a: any(fnmatch.fnmatchcase(a, p) for p in attacks))]
        if frame.empty:
            raise PartcliError(f"--attack {' '.join(attacks)}: no row matches")
    configs = _checkpoint_configs(frame)
    frame = frame.assign(
        dataset_name=[configs[c].get("dataset", {}).get("name") or d for c, d in zip(frame["checkpoint"], frame.get(
            "dataset", pd.Series("", index=frame.index)))],
        group=_groups(frame, configs, by), value=metric_values(frame, metric))
    for column in BENCHMARK:
        if column not in frame.columns:
            frame[column] = ""
    frame = frame.dropna(subset=["value"])
    if frame.empty:
        raise PartcliError(f"--metric {metric}: no row of {', '.join(map(str, paths))} has a value for it")
    last = frame.drop_duplicates(subset=[*BENCHMARK, "checkpoint"], keep="last")
    if len(last) < len(frame):
        notes.append(f"{len(frame) - len(last)} earlier row(s) of a checkpoint on the same benchmark were replaced "
                     "by its last row")
    groups = list(dict.fromkeys(last["group"]))
    if reference is not None and reference not in groups:
        raise PartcliError(f"--ref {reference!r}: not a value of {by} in these rows ({', '.join(groups)})")
    ref = reference if reference is not None else groups[0]
    rows = []
    for key, bench in last.groupby(list(BENCHMARK), sort=False):
        ref_values = bench.loc[bench["group"] == ref, "value"].to_numpy()
        for group in groups:
            values = bench.loc[bench["group"] == group, "value"].to_numpy()
            if not len(values):
                continue
            mean, half = mean_ci(values)
            rows.append({**dict(zip(["dataset", *BENCHMARK[1:]], key)), "by": by, "group": group, "metric": metric,
                         "n_models": len(values), "mean": mean,
                         "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
                         "ci95_low": None if half is None else mean - half,
                         "ci95_high": None if half is None else mean + half, "reference": ref,
                         "p_value": None if group == ref else welch_p(values, ref_values)})
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    few = summary.loc[summary["n_models"] < 2, "group"].unique()
    if len(few):
        notes.append(f"fewer than two checkpoints (seeds) in {by} = {', '.join(few)} on some benchmarks: no "
                     "confidence interval or p-value there")
    flat = summary[(summary["group"] != ref) & summary["p_value"].isna() & (summary["n_models"] > 1)]
    if len(flat):
        notes.append(f"{len(flat)} comparison(s) without a p-value: both groups have no spread (all values equal)")
    return CompareResult(summary, groups, notes)


def write_summary(summary: pd.DataFrame, path: str | Path) -> None:
    """Write the summary CSV atomically; an existing file is replaced."""
    path = Path(path)
    with writing(path), atomic_write(path, text=True) as fh:
        summary.to_csv(fh, index=False, float_format="%.6g")


def _checkpoint_configs(frame: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Each named checkpoint's configuration, read once (paths as written in the CSV, relative to here)."""
    from partcli.checkpoint import Checkpoint

    configs = {}
    for ckpt, source, line in zip(frame["checkpoint"], frame["_source"], frame["_line"]):
        if ckpt in configs:
            continue
        if not Path(ckpt).is_file():
            raise PartcliError(f"{source}:{line}: checkpoint {ckpt!r} not found; compare reads the checkpoints a CSV "
                               "names (run it from the folder the CSV was written in)")
        configs[ckpt] = Checkpoint.load(ckpt).config
    return configs


def _groups(frame: pd.DataFrame, configs: dict[str, dict[str, Any]], by: str) -> list[str]:
    """The group of every row: the checkpoint property ``by``, else the CSV column ``by``."""
    try:
        values = {c: checkpoint_property(cfg, by) for c, cfg in configs.items()}
    except KeyError:
        if by in frame.columns and not by.startswith("_"):
            return list(frame[by])
        known = sorted({k for cfg in configs.values() for s in CONFIG_SECTIONS
                        for k, v in (cfg.get(s) or {}).items() if not isinstance(v, (dict, list))})
        raise PartcliError(f"--by {by!r}: neither a checkpoint property nor a column of the results (properties: "
                           f"{', '.join(known)})") from None
    return [_label(values[c]) for c in frame["checkpoint"]]


def _label(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def compare_table(result: CompareResult, metric: str) -> "Table":
    """A Rich table: a row per benchmark, mean ± 95 % CI (n) per group, then each group's Welch p vs the reference."""
    from rich.markup import escape
    from rich.table import Table

    scale = 100 if metric in FRACTIONS else 1
    summary = result.summary
    ref = summary["reference"].iloc[0]
    others = [g for g in result.groups if g != ref]
    table = Table(title=escape(f"{metric}{' (%)' if scale == 100 else ''} by {summary['by'].iloc[0]}: mean ± 95 % CI "
                               f"(n checkpoints); Welch's t-test p vs {ref}"))
    table.add_column("benchmark")
    for group in result.groups:
        table.add_column(escape(group), justify="right")
    for group in others:
        table.add_column(escape(f"p {group}"), justify="right")
    for _, bench in summary.groupby(["dataset", "split", "suite", "attack", "eps"], sort=False):
        first = bench.iloc[0]
        name = f"{first['suite']} / {first['attack']}" + (f" @ {first['eps']}" if first["eps"] else "")
        cells = {row["group"]: row for _, row in bench.iterrows()}
        values = [_mean_cell(cells.get(g), scale) for g in result.groups]
        pvalues = ["–" if g not in cells or cells[g]["p_value"] is None or pd.isna(cells[g]["p_value"])
                   else f"{cells[g]['p_value']:.2g}" for g in others]
        table.add_row(escape(f"{name} [{first['dataset']}, {first['split']}]"), *values, *pvalues)
    return table


def _mean_cell(row: Any, scale: float) -> str:
    if row is None:
        return "–"
    text = f"{scale * row['mean']:.1f}"
    if row["ci95_low"] is not None and not pd.isna(row["ci95_low"]):
        text += f" ± {scale * (row['mean'] - row['ci95_low']):.1f}"
    return f"{text} ({row['n_models']})"
