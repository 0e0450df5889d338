"""The report's robustness section: one row per model configuration over the shift sets of ``partcli robustness``
(paper Tables 2–4), and accuracy against corruption severity per corruption type.

Per checkpoint a cell is the figure of its robustness row on the report's split (its last one, as CSVs are
appended); cells of several seeds of one configuration are pooled as in Table 1 (``tables.mean_ci``).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from partcli.report.curves import FONT_PT, LINE_MARKERS, new_figure
from partcli.report.masks_figure import plain
from partcli.report.palette import OKABE_ITO
from partcli.report.tables import MeanCI, Table, mean_ci
from partcli.robustness.corruptions import CORRUPTIONS


@dataclass(frozen=True)
class ShiftColumn:
    header: str
    suite: str | None  # None: the clean accuracy every robustness row carries
    attack: str | None
    value: str  # the CSV column holding the figure


CLEAN = ShiftColumn("clean", None, None, "clean_acc")
FOREGROUND_AND_SHAPE = (  # paper Table 3 (ImageNet-9 sets, BG-gap) and Table 4 (cue conflict)
    ShiftColumn("Only-FG", "foreground", "only-fg", "adv_acc"),
    ShiftColumn("Only-BG", "foreground", "only-bg", "adv_acc"),
    ShiftColumn("Mixed-Same", "foreground", "mixed-same", "adv_acc"),
    ShiftColumn("Mixed-Rand", "foreground", "mixed-rand", "adv_acc"),
    ShiftColumn("BG-gap", "foreground", "bg-gap", "bg_gap"),
    ShiftColumn("cue-conflict (shape acc)", "shape-texture", "cue-conflict", "adv_acc"),
    ShiftColumn("shape bias", "shape-texture", "cue-conflict", "shape_bias"),
)
STYLIZED = (  # only when some model was run with --stylizer
    ShiftColumn("stylized (shape acc)", "shape-texture", "stylized", "adv_acc"),
    ShiftColumn("stylized shape bias", "shape-texture", "stylized", "shape_bias"),
)
IMAGENET9 = (  # only when some model was run with --imagenet9: the release's own images (paper Table 3)
    ShiftColumn("IN-9 Original", "foreground", "in9/original", "adv_acc"),
    ShiftColumn("IN-9 Only-FG", "foreground", "in9/only-fg", "adv_acc"),
    ShiftColumn("IN-9 Mixed-Rand", "foreground", "in9/mixed-rand", "adv_acc"),
    ShiftColumn("IN-9 spurious", "foreground", "in9/spurious", "adv_acc"),
    ShiftColumn("IN-9 BG-gap", "foreground", "in9/bg-gap", "bg_gap"),
)
STYLIZED_IMAGENET = (  # only when some model was run with --stylized (paper Table 4)
    ShiftColumn("Stylized-ImageNet", "shape-texture", "stylized-imagenet", "adv_acc"),
)
FOLDER_SETS = r"in9/.*|stylized-imagenet"  # rows whose clean_acc is of other images than the split's


@dataclass
class RobustnessTable:
    table: Table
    values: dict[tuple[str, str], MeanCI]  # (model, column header) → cell
    notes: list[str]


def corruption_mean(rows: pd.DataFrame) -> str | None:
    """The corruption mean the table shows: ``mean`` (all 15 types × 5 severities, paper Table 2) when any model has
    it, else the subset mean (``mean/<types>/<severities>``) of the most checkpoints."""
    means = rows.loc[(rows["suite"] == "corruptions") & rows["attack"].str.fullmatch(r"mean(/.*)?"),
                     ["attack", "checkpoint_id"]].drop_duplicates()
    if means.empty:
        return None
    if (means["attack"] == "mean").any():
        return "mean"
    return Counter(means["attack"]).most_common(1)[0][0]


def robustness_table(rows: pd.DataFrame) -> RobustnessTable:
    """Rows (annotated, of one dataset and split, robustness family) → one row per model configuration."""
    mean_name = corruption_mean(rows) or "mean"
    columns = [CLEAN, ShiftColumn(f"corruptions ({mean_name})", "corruptions", mean_name, "adv_acc"),
               *FOREGROUND_AND_SHAPE]
    if (rows["attack"] == "stylized").any():
        columns += STYLIZED
    if rows["attack"].str.startswith("in9/").any():
        columns += IMAGENET9
    if (rows["attack"] == "stylized-imagenet").any():
        columns += STYLIZED_IMAGENET
    values, body = {}, []
    for model, group in rows.groupby("model", sort=False):
        per_checkpoint = [_figures(g, columns) for _, g in group.groupby("checkpoint_id", sort=False)]
        for column in columns:
            values[model, column.header] = mean_ci([f[column.header] for f in per_checkpoint])
        runs = ", ".join(sorted({r for r in group["run"] if r}))
        body.append([group["label"].iloc[0], runs, str(len(per_checkpoint)),
                     *(values[model, c.header].text() for c in columns)])
    others = sorted(set(rows.loc[(rows["suite"] == "corruptions") & rows["attack"].str.startswith("mean"), "attack"])
                    - {mean_name})
    notes = [f"Other corruption means (in All results): {', '.join(f'`{m}`' for m in others)}."] if others else []
    return RobustnessTable(Table(["model", "runs", "seeds", *(c.header for c in columns)], body), values, notes)


def severity_curves(rows: pd.DataFrame) -> dict[str, list[tuple[str, list[tuple[int, MeanCI]]]]]:
    """Corruption type → [(model label, [(severity, accuracy: mean ± CI over seeds)])]; severity 0 is the clean
    accuracy. Types in ImageNet-C's order."""
    graded = rows[(rows["suite"] == "corruptions") & rows["severity"].notna()]
    graded = graded.assign(corruption=graded["attack"].str.split("/").str[0])
    order = {name: k for k, name in enumerate(CORRUPTIONS)}
    curves: dict[str, list[tuple[str, list[tuple[int, float]]]]] = {}
    for corruption in sorted(dict.fromkeys(graded["corruption"]), key=lambda c: order.get(c, len(order))):
        of_type = graded[graded["corruption"] == corruption]
        lines = []
        for model, group in of_type.groupby("model", sort=False):
            last = group.groupby(["checkpoint_id", "severity"], sort=False).last().reset_index()
            clean = last.groupby("checkpoint_id")["clean_acc"].last()
            points = [(0, mean_ci(clean.tolist()))]
            points += [(int(s), mean_ci(g["adv_acc"].tolist())) for s, g in last.groupby("severity")]
            lines.append((group["label"].iloc[0], points))
        curves[corruption] = lines
    return curves


def severity_figure(curves: dict[str, list[tuple[str, list[tuple[int, MeanCI]]]]], title: str) -> Figure:
    """A small panel per corruption type: accuracy (%) against severity (0 = clean), a line per model (its own
    colour and marker; the 95 % CI over seeds as a band)."""
    labels = list(dict.fromkeys(label for lines in curves.values() for label, _ in lines))
    colours = {label: OKABE_ITO[k % len(OKABE_ITO)] for k, label in enumerate(labels)}
    markers = {label: LINE_MARKERS[k % len(LINE_MARKERS)] for k, label in enumerate(labels)}
    columns = min(5, len(curves))
    legend_columns = min(len(labels), 1 if columns <= 2 else 2)
    legend_rows = math.ceil(len(labels) / legend_columns)
    panel_rows = math.ceil(len(curves) / columns)
    legend_height = 0.22 * legend_rows + 0.15  # inches below the panels
    height = 2.1 * panel_rows + 0.5 + legend_height
    fig = new_figure(max(2.5 * columns + 0.5, 4.5), height)
    axes = fig.subplots(panel_rows, columns, squeeze=False, sharex=True, sharey=True)
    for ax, (corruption, lines) in zip(axes.flat, curves.items()):
        for label, points in lines:
            xs, ys = [s for s, _ in points], [100 * a.mean for _, a in points]
            ax.plot(xs, ys, marker=markers[label], markersize=3.5, color=colours[label])
            if any(a.half is not None for _, a in points):
                half = [100 * (a.half or 0.0) for _, a in points]
                ax.fill_between(xs, [y - h for y, h in zip(ys, half)], [y + h for y, h in zip(ys, half)],
                                color=colours[label], alpha=0.15, linewidth=0)
        ax.set_title(plain(corruption.replace("_", " ")), fontsize=FONT_PT)
        ax.set_ylim(0, 100)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=FONT_PT)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(curves):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy (%)", fontsize=FONT_PT)
    for ax in axes[-1]:
        ax.set_xlabel("severity (0 = clean)", fontsize=FONT_PT)
    handles = [Line2D([], [], marker=markers[label], markersize=3.5, color=colours[label], label=plain(label))
               for label in labels]
    fig.legend(handles=handles, loc="lower center", ncol=legend_columns, fontsize=FONT_PT, frameon=False)
    fig.suptitle(plain(title), fontsize=FONT_PT + 1)
    fig.tight_layout(rect=(0, legend_height / height, 1, 1))
    return fig


def _figures(rows: pd.DataFrame, columns: list[ShiftColumn]) -> dict[str, float]:
    """One checkpoint's cells: each column's figure from its last matching row (NaN when it was not run)."""
    clean = rows.loc[~rows["attack"].str.fullmatch(FOLDER_SETS), "clean_acc"].dropna()
    out = {CLEAN.header: float(clean.iloc[-1]) if not clean.empty else math.nan}
    for column in columns[1:]:
        match = rows.loc[(rows["suite"] == column.suite) & (rows["attack"] == column.attack), column.value].dropna()
        out[column.header] = float(match.iloc[-1]) if not match.empty else math.nan
    return out
