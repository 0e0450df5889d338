"""The report's numbers: results rows labelled by model, per-checkpoint figures, mean ± CI over seeds, tables.

Pure functions over the rows ``partcli.report.inputs`` reads (plus ``annotate``, which looks up each
checkpoint's configuration). A Table-1 cell (paper Table 1) is, per checkpoint, the lowest robust accuracy of
its AutoAttack (or PGD) rows at the report's ε on the report's split, and its clean accuracy is that of the
split's ``evaluate`` row when there is one, else the ``clean_acc`` of the attack row the cell came from; cells
of several seeds of one configuration are their mean ± the 95 % t-interval half-width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from scipy import stats

from partcli.config import eps_label
from partcli.evaluate.results_csv import PGD_SETTINGS
from partcli.report.inputs import ReportInputs
from partcli.report.models import ModelInfo, labels, model_info, sort_key

METRICS = ("clean", "AutoAttack", "PGD")


@dataclass(frozen=True)
class MeanCI:
    mean: float
    half: float | None  # None for a single value
    n: int

    def text(self, scale: float = 100.0) -> str:
        if self.n == 0:
            return "–"
        if self.half is None:
            return f"{scale * self.mean:.1f}"
        return f"{scale * self.mean:.1f} ± {scale * self.half:.1f}"


def mean_ci(values: list[float], confidence: float = 0.95) -> MeanCI:
    """Mean and the half-width of its t-distribution confidence interval (Student, n − 1 degrees of freedom)."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return MeanCI(math.nan, None, 0)
    mean = sum(values) / len(values)
    if len(values) < 2:
        return MeanCI(mean, None, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = stats.t.ppf((1 + confidence) / 2, len(values) - 1) * sd / math.sqrt(len(values))
    return MeanCI(mean, float(half), len(values))


def attack_kind(attack: str) -> str | None:
    """Table 1's column of an ``attack`` cell: the real AutoAttack (any variant) or partcli's PGD."""
    if attack == "pgd":
        return "PGD"
    if attack == "autoattack" or attack.startswith("autoattack["):
        return "AutoAttack"
    return None


def annotate(inputs: ReportInputs) -> tuple[pd.DataFrame, dict[str, ModelInfo]]:
    """The rows with ``model`` (configuration key), ``label``, ``run``, ``seed``, ``kind`` and ``order`` added."""
    rows = inputs.rows.copy()
    infos: dict[str, ModelInfo] = {}
    by_checkpoint = {}
    for checkpoint, located in rows[["checkpoint", "checkpoint_id"]].drop_duplicates("checkpoint_id").itertuples(
            index=False):
        info = model_info(checkpoint, Path(located))
        if not info.config:
            inputs.skipped.append(f"{checkpoint}: neither the checkpoint nor its run folder's config.yaml was found; "
                                  "its rows form a model of their own")
        by_checkpoint[located] = info
        infos[info.key] = info
    named = labels(list(infos.values()))
    rows["model"] = rows["checkpoint_id"].map(lambda c: by_checkpoint[c].key)
    rows["label"] = rows["model"].map(named)
    rows["run"] = rows["checkpoint_id"].map(lambda c: by_checkpoint[c].run)
    rows["seed"] = rows["checkpoint_id"].map(lambda c: by_checkpoint[c].seed)
    rows["kind"] = rows["attack"].map(attack_kind)
    order = sorted(infos.values(), key=lambda i: sort_key(i, named[i.key]))
    rows["order"] = rows["model"].map({info.key: k for k, info in enumerate(order)})
    return rows.sort_values("order", kind="stable").reset_index(drop=True), infos


def per_checkpoint(rows: pd.DataFrame, split: str, eps: float) -> pd.DataFrame:
    """One row per (model, dataset, checkpoint): clean, AutoAttack and PGD accuracy at ``eps`` on ``split``."""
    out = []
    selected = rows[(rows["split"] == split) & rows["family"].isin(("attack", "evaluate"))]
    for (model, dataset, checkpoint), group in selected.groupby(["model", "dataset_name", "checkpoint_id"],
                                                                sort=False):
        at_eps = group[(group["family"] == "attack") & group["eps"].map(lambda e: _same(e, eps))]
        figures = {"model": model, "label": group["label"].iloc[0], "run": group["run"].iloc[0],
                   "dataset_name": dataset, "checkpoint": checkpoint}
        clean_from, figures["pgd_setting"] = None, None
        for kind in ("AutoAttack", "PGD"):
            of_kind = at_eps[at_eps["kind"] == kind].dropna(subset=["adv_acc"])
            if of_kind.empty:
                figures[kind] = math.nan
                continue
            strongest = of_kind.loc[of_kind["adv_acc"].idxmin()]
            figures[kind] = float(strongest["adv_acc"])
            clean_from = strongest if clean_from is None else clean_from
            if kind == "PGD":
                figures["pgd_setting"] = pgd_setting(strongest)
        evaluated = group[group["family"] == "evaluate"].dropna(subset=["clean_acc"])
        if not evaluated.empty:
            figures["clean"] = float(evaluated["clean_acc"].iloc[-1])
        else:
            figures["clean"] = math.nan if clean_from is None else float(clean_from["clean_acc"])
        out.append(figures)
    return pd.DataFrame(out, columns=["model", "label", "run", "dataset_name", "checkpoint", *METRICS, "pgd_setting"])


def pgd_setting(row: pd.Series) -> str:
    """How a PGD row's attack ran, e.g. "20 steps of 1/255, 1 restart" (rows before partcli recorded it: unknown)."""
    steps, step, restarts = (row.get(k, math.nan) for k in PGD_SETTINGS)
    if any(pd.isna(v) for v in (steps, step, restarts)):
        return "steps and restarts not recorded (a results CSV written before partcli recorded them)"
    return (f"{int(steps)} step{'s' if steps != 1 else ''} of {eps_text(step)}, "
            f"{int(restarts)} restart{'s' if restarts != 1 else ''}")


def pooled(figures: pd.DataFrame) -> dict[tuple[str, str, str], MeanCI]:
    """(model, dataset, metric) → mean ± CI over the model's checkpoints (seeds)."""
    out = {}
    for (model, dataset), group in figures.groupby(["model", "dataset_name"], sort=False):
        for metric in METRICS:
            out[model, dataset, metric] = mean_ci(group[metric].tolist())
    return out


@dataclass
class Table:
    """A table to print: a header and rows of cell strings."""

    header: list[str]
    rows: list[list[str]]
    pgd_settings: list[str] = field(default_factory=list)  # Table 1: how the PGD column's attacks ran

    def markdown(self) -> str:
        lines = ["| " + " | ".join(map(_cell, self.header)) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in self.rows]
        return "\n".join(lines)


def table1(rows: pd.DataFrame, split: str, eps: float) -> tuple[Table, dict[tuple[str, str, str], MeanCI]]:
    """Paper Table 1: one row per model configuration, clean / AutoAttack / PGD accuracy (%) per dataset."""
    figures = per_checkpoint(rows, split, eps)
    values = pooled(figures)
    datasets = list(dict.fromkeys(figures["dataset_name"]))
    header = ["model", "runs", "seeds"] + [f"{d}: {m}" for d in datasets for m in METRICS]
    body = []
    for model, group in figures.groupby("model", sort=False):
        runs = ", ".join(sorted({r for r in group["run"] if r}))
        cells = [values[model, d, m].text() if (model, d, m) in values else "–" for d in datasets for m in METRICS]
        body.append([group["label"].iloc[0], runs, str(group["checkpoint"].nunique()), *cells])
    return Table(header, body, sorted(set(figures["pgd_setting"].dropna()))), values


def results_table(rows: pd.DataFrame) -> Table:
    """Every row read, as in the CSVs (accuracies in %)."""
    header = ["model", "run", "dataset", "split", "suite", "attack", "ε", "n", "clean acc", "adv acc",
              "clean pixel acc", "adv pixel acc"]
    body = []
    for r in rows.itertuples(index=False):
        eps = "–" if r.family == "evaluate" or math.isnan(r.eps) else eps_text(r.eps)
        body.append([r.label, r.run, r.dataset_name, r.split, r.suite, r.attack, eps,
                     "–" if math.isnan(r.n) else str(int(r.n)), *(_pct(v) for v in (
                         r.clean_acc, r.adv_acc, r.clean_pixel_acc, r.adv_pixel_acc))])
    return Table(header, body)


def eps_text(eps: float) -> str:
    """``8/255`` for a radius read back from a CSV (6 significant digits), else the number."""
    return eps_label(round(eps * 255, 3) / 255)


def _pct(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f}"


def _same(a: float, b: float) -> bool:
    return not math.isnan(a) and math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
