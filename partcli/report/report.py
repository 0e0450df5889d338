"""``partcli report``: one page of tables and figures from run folders and results CSVs: ``index.md`` with its
figure files (PNG, PDF or SVG), the same page as one self-contained ``index.html`` (figures embedded) and the
paper's tables as LaTeX (``table1.tex``, ``robustness.tex``).

The page is a list of sections, each made by one function of the report's context (``SECTIONS``); a section
says so when it has nothing to show. Adding a kind of results means one more section function here and its
suites in ``partcli.report.inputs.ROW_FAMILIES``.

The output folder is the report's own (``partcli.report.out_folder``): a previous report in it (recognised by the
first line of its ``index.md``) is replaced, its figures removed; any other non-empty folder is refused unless
``--overwrite``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd
from matplotlib.figure import Figure

from partcli.config import eps_label
from partcli.options import parse_fraction
from partcli.data.contract import SPLITS
from partcli.errors import PartcliError
from partcli.report.curves import eps_sweep_figure, training_curves
from partcli.report.figure_files import check_format
from partcli.report.inputs import ReportInputs, read_inputs
from partcli.report.latex import latex_table
from partcli.report.models import ModelInfo, configuration_key, describe
from partcli.report.out_folder import MARKER, check_out, write_report
from partcli.report.robustness import robustness_table, severity_curves, severity_figure
from partcli.report.sweep_figure import plotted, sweep_figure
from partcli.report.tables import MeanCI, Table, annotate, per_checkpoint, pooled, results_table, table1
from partcli.report.tradeoff import TradeoffPoint, tradeoff_figure
from partcli.version import __version__

HYGIENE_MARKS = {"ok": "✓", "warn": "⚠", "not run": "–"}


@dataclass
class Section:
    title: str
    body: str  # Markdown; figures are linked by file name (``name.png``, renamed for another --format)
    figures: dict[str, Figure] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # further text files, e.g. a LaTeX table


@dataclass
class ReportContext:
    inputs: ReportInputs
    rows: pd.DataFrame  # annotated results rows (``tables.annotate``)
    infos: dict[str, ModelInfo]
    split: str
    eps: float

    @property
    def linf_rows(self) -> pd.DataFrame:
        """The rows Table 1, the trade-off and the ε sweep show: ℓ∞ attacks (and rows without a norm, e.g. clean
        evaluations); ℓ2 rows are listed with every result."""
        if self.rows.empty or "norm" not in self.rows:
            return self.rows
        return self.rows[self.rows["norm"].fillna("").isin(["", "Linf"])]


@dataclass
class ReportResult:
    out: Path
    sections: list[Section]
    skipped: list[str]
    table1_values: dict[tuple[str, str, str], MeanCI]  # (model label, dataset name, metric) → cell
    robustness_values: dict[tuple[str, str, str], MeanCI]  # (model label, dataset name, column header) → cell


def build_report(paths: list[str | Path], out: str | Path = "report", *, split: str = "test",
                 eps: float | str = 8 / 255, overwrite: bool = False, fmt: str = "png") -> ReportResult:
    """Python API of ``partcli report``: read ``paths``, write ``out/index.md``, its figures (as ``fmt``),
    ``index.html`` and the LaTeX tables."""
    check_format(fmt)
    if split not in SPLITS:
        raise PartcliError(f"--split {split!r}: expected one of {', '.join(SPLITS)}")
    eps = parse_fraction(eps, "--eps")
    if not 0 < eps <= 1:
        raise PartcliError(f"--eps {eps:g}: expected a radius in (0, 1], e.g. 8/255")
    out = Path(out)
    previous = check_out(out, overwrite)
    inputs = read_inputs(paths)
    if inputs.empty:
        reasons = "; ".join(inputs.skipped[:2]) + (f"; and {len(inputs.skipped) - 2} more" if len(inputs.skipped) > 2
                                                  else "")
        raise PartcliError(f"nothing to report in {', '.join(map(str, paths))}: no run folder with metrics.csv, no "
                           "results CSV of partcli attack, evaluate or robustness, no hygiene checklist"
                           + (f" (skipped: {reasons})" if reasons else ""))
    rows, infos = annotate(inputs) if not inputs.rows.empty else (inputs.rows, {})
    context = ReportContext(inputs, rows, infos, split, eps)
    sections = [s for make in SECTIONS if (s := make(context)) is not None]
    sections.append(_skipped_section(inputs.skipped))  # last: the sections may add to what was skipped
    write_report(out, previous, _page(paths, inputs, context, sections),
                 {name: fig for s in sections for name, fig in s.figures.items()},
                 {name: text for s in sections for name, text in s.files.items()}, fmt)
    return ReportResult(out, sections, inputs.skipped, _table1_by_label(context), _robustness_by_label(context))


# -- sections ---------------------------------------------------------------------------------------------
def table1_section(ctx: ReportContext) -> Section:
    title = f"Table 1: clean and robust accuracy (%), {ctx.split} split, ℓ∞ ε = {eps_label(ctx.eps)}"
    if ctx.rows.empty:
        return Section(title, "No results CSV was read.")
    table, _ = table1(ctx.linf_rows, ctx.split, ctx.eps)
    if not table.rows:
        return Section(title, f"No results of attack or evaluate on the {ctx.split} split.")
    caption = ("Rows are model configurations; several seeds of one configuration give mean ± 95 % CI "
               "(t distribution; `seeds` = checkpoints pooled). AutoAttack and PGD: the lowest robust accuracy "
               "among a checkpoint's rows at this ε; clean: its `evaluate` row on the split, else the clean "
               "accuracy of the attack row. PGD: `partcli attack`'s PGD (`pgd` rows, suites pgd, all and "
               f"eps-sweep; App. B: 100 steps of 0.001, 5 restarts), here {'; '.join(table.pgd_settings) or 'not run'}.")
    latex = latex_table(table, f"{title}. {caption.replace('`', '')}", "tab:partcli-table1")
    return Section(title, f"{caption}\n\n{table.markdown()}\n\nAs LaTeX (booktabs): [table1.tex](table1.tex).",
                   files={"table1.tex": latex})


def tradeoff_section(ctx: ReportContext) -> Section:
    title = "Accuracy–robustness trade-off"
    points, attack, notes = _tradeoff_points(ctx)
    if not points:
        return Section(title, "No adversarially trained (PGD or TRADES) model with clean and robust accuracy "
                              f"at ε = {eps_label(ctx.eps)} on the {ctx.split} split: no trade-off plot.")
    body = (f"Clean vs robust accuracy at ε = {eps_label(ctx.eps)} (paper Figs. 2, 4): filled = PGD training, "
            "hollow = TRADES (β next to it); clean-trained models are left out.")
    body += "".join(f"\n\n{n}" for n in notes) + "\n\n![trade-off](tradeoff.png)"
    return Section(title, body, {"tradeoff.png": tradeoff_figure(points, attack)})


def eps_sweep_section(ctx: ReportContext) -> Section:
    title = "ε sweep"
    curves, attack, archs = _sweep_curves(ctx)
    if not curves:
        return Section(title, "No model was attacked at several ε (run `partcli attack --suite eps-sweep`).")
    body = (f"Robust accuracy against the ℓ∞ radius on the {ctx.split} split (paper Table 10), mean over seeds "
            "with its 95 % CI as a band; dashed = clean-trained.\n\n![ε sweep](eps-sweep.png)")
    return Section(title, body, {"eps-sweep.png": eps_sweep_figure(curves, attack, archs)})


def results_section(ctx: ReportContext) -> Section | None:
    if ctx.rows.empty:
        return None
    sources = ", ".join(f"`{s}`" for s in ctx.inputs.sources)
    return Section("All results", f"Every row read from {sources} (accuracies in %).\n\n"
                                  f"{results_table(ctx.rows).markdown()}")


def hygiene_section(ctx: ReportContext) -> Section:
    title = "Evaluation hygiene"
    if not ctx.inputs.checklists:
        return Section(title, "No hygiene checklist was found (`partcli attack` writes `*.hygiene.json` beside "
                              "its results unless run with `--no-hygiene`).")
    parts = []
    for c in ctx.inputs.checklists:
        eps = c.meta.get("eps")
        where = (f"`{c.meta.get('checkpoint', '?')}`, suite {c.meta.get('suite', '?')}, "
                 f"{c.meta.get('split', '?')} split" + (f", ε = {eps_label(eps)}" if isinstance(eps, float) else ""))
        lines = [f"- {HYGIENE_MARKS.get(k['status'], '?')} {k['name']}: "
                 + (k["message"] if k["status"] != "not run" else f"not run ({k['message']})") for k in c.checks]
        parts.append(f"{where} (`{c.path.name}`):\n\n" + "\n".join(lines))
    return Section(title, "Checks of Carlini et al. (2019), paper App. D.3.\n\n" + "\n\n".join(parts))


def curves_section(ctx: ReportContext) -> Section:
    title = "Training curves"
    if not ctx.inputs.runs:
        return Section(title, "No run folder with metrics.csv was found.")
    parts, figures = [], {}
    groups: dict[str, list] = {}  # the seeds of one configuration share a figure: mean and 95 % CI band
    for run in ctx.inputs.runs:
        groups.setdefault(configuration_key(run.config) if run.config else str(run.path), []).append(run)
    for runs in groups.values():
        first, what = runs[0], describe(runs[0].config) if runs[0].config else "configuration unknown"
        name = _unique(f"curves-{_slug(first.name)}.png", figures)
        if len(runs) > 1:
            caption, heading, alt = f"{what}, {len(runs)} seeds (mean, 95 % CI band)", f"{what}, {len(runs)} seeds", what
            text = f"Runs {', '.join(r.name for r in runs)}: mean over the seeds, their 95 % CI as a band."
        else:
            caption, heading, alt = f"{what} (run {first.name})", first.name, first.name
            text = f"{what}, {len(first.metrics)} epoch(s)."
        figures[name] = training_curves([r.metrics for r in runs], caption)
        parts.append(f"### {heading}\n\n{text}\n\n![{alt}]({name})")
    return Section(title, "\n\n".join(parts), figures)


def robustness_section(ctx: ReportContext) -> Section:
    title = f"Robustness to distribution shift (%), {ctx.split} split"
    shifted = _robustness_rows(ctx)
    if shifted.empty:
        return Section(title, f"No results of `partcli robustness` on the {ctx.split} split.")
    seeds = ", ".join(f"{s:g}" for s in sorted(shifted["shift_seed"].dropna().unique()))
    parts = ["Paper Tables 2–4: rows are model configurations, several seeds of one configuration give mean ± 95 % "
             "CI as in Table 1. `clean`: the unshifted split at the model's resolution; corruptions: the mean "
             "accuracy over the ImageNet-C types and severities named (`mean`: all 15 × 5); BG-gap = Mixed-Same − "
             "Mixed-Rand; cue-conflict: shape accuracy and shape bias (the shape's class among the predictions of "
             f"either class). Sets generated with seed {seeds or '?'}; \"–\": not run."]
    figures, latex = {}, []
    datasets = list(dict.fromkeys(shifted["dataset_name"]))
    for dataset in datasets:
        of_dataset = shifted[shifted["dataset_name"] == dataset]
        table = robustness_table(of_dataset)
        latex.append(latex_table(table.table, f"Robustness to distribution shift (%), {dataset}, {ctx.split} split",
                                 f"tab:partcli-robustness-{_slug(dataset)}"))
        part = ([f"### {_md(dataset)}"] if len(datasets) > 1 else []) + [table.table.markdown(), *table.notes]
        curves = severity_curves(of_dataset)
        if curves:
            name = _unique(f"corruptions-{_slug(dataset)}.png", figures)
            figures[name] = severity_figure(curves, f"{dataset}: accuracy under corruption, mean and 95 % CI "
                                                    "over seeds")
            part.append("Accuracy against corruption severity per type (mean over seeds, 95 % CI as a band; "
                        f"0 = clean).\n\n![corruptions, {_md(dataset)}]({name})")
        parts.append("\n\n".join(part))
    parts.append("As LaTeX (booktabs): [robustness.tex](robustness.tex).")
    return Section(title, "\n\n".join(parts), figures, {"robustness.tex": "\n".join(latex)})


def sweeps_section(ctx: ReportContext) -> Section | None:
    """Each ``partcli sweep``'s points (paper §3.5.3, Tables 7–9): a figure and the table of ``sweep.csv``."""
    if not ctx.inputs.sweeps:
        return None
    parts, figures = [], {}
    for sweep in ctx.inputs.sweeps:
        header = ["stage", "point", *sweep.keys, "status", "best epoch", "val clean", "val adv", "picked"]
        body = [[str(r.stage), str(r.point), *(r.values.get(k, "") for k in sweep.keys), r.status,
                 "–" if r.best_epoch is None else str(r.best_epoch), _pct(r.val_clean_acc), _pct(r.val_adv_acc),
                 "✓" if r.picked else ""] for r in sweep.rows]
        part = [f"### {_md(sweep.name)}", f"`{sweep.path}`: {len(sweep.rows)} point(s) in "
                f"{len({r.stage for r in sweep.rows})} stage(s); accuracies (%) of each run's best checkpoint on "
                "the validation split; ✓ = the point its stage picked (the later stages start from it).",
                Table(header, body).markdown()]
        if plotted(sweep.rows):
            name = _unique(f"sweep-{_slug(sweep.name)}.png", figures)
            figures[name] = sweep_figure(sweep.rows, f"sweep {sweep.name}")
            left = len(sweep.rows) - len(plotted(sweep.rows))
            part.append("Validation clean vs adversarial accuracy, one marker per stage, labelled with the point's "
                        "values; picked points ringed" + (f"; {left} point(s) without both accuracies left out"
                                                          if left else "") + f".\n\n![sweep {_md(sweep.name)}]({name})")
        else:
            part.append("No point has both a validation clean and adversarial accuracy yet (unfinished, or clean "
                        "runs): no figure.")
        parts.append("\n\n".join(part))
    return Section("Hyper-parameter sweeps", "\n\n".join(parts), figures)


SECTIONS: list[Callable[[ReportContext], Section | None]] = [
    table1_section, tradeoff_section, eps_sweep_section, robustness_section, sweeps_section, hygiene_section,
    curves_section, results_section]


def _table1_by_label(ctx: ReportContext) -> dict[tuple[str, str, str], MeanCI]:
    if ctx.rows.empty:
        return {}
    label = ctx.rows.drop_duplicates("model").set_index("model")["label"].to_dict()
    return {(label[m], d, k): v for (m, d, k), v in table1(ctx.linf_rows, ctx.split, ctx.eps)[1].items()}


def _robustness_rows(ctx: ReportContext) -> pd.DataFrame:
    if ctx.rows.empty:
        return ctx.rows
    return ctx.rows[(ctx.rows["family"] == "robustness") & (ctx.rows["split"] == ctx.split)]


def _robustness_by_label(ctx: ReportContext) -> dict[tuple[str, str, str], MeanCI]:
    shifted = _robustness_rows(ctx)
    out = {}
    for dataset, rows in shifted.groupby("dataset_name", sort=False):
        label = rows.drop_duplicates("model").set_index("model")["label"].to_dict()
        out.update({(label[m], dataset, c): v for (m, c), v in robustness_table(rows).values.items()})
    return out


# -- figure data ------------------------------------------------------------------------------------------
def _tradeoff_points(ctx: ReportContext):
    if ctx.rows.empty:
        return {}, {}, []
    figures = per_checkpoint(ctx.linf_rows, ctx.split, ctx.eps)
    values = pooled(figures)
    points: dict[str, list[TradeoffPoint]] = {}
    attack, notes = {}, []
    for dataset in dict.fromkeys(figures["dataset_name"]):
        adv_models = [m for m in dict.fromkeys(figures.loc[figures["dataset_name"] == dataset, "model"])
                      if ctx.infos[m].adv in ("pgd", "trades")]
        kind = next((k for k in ("AutoAttack", "PGD") if any(values[m, dataset, k].n for m in adv_models)), None)
        if kind is None:
            continue
        attack[dataset] = kind
        label = figures.set_index("model")["label"].to_dict()
        chosen = [m for m in adv_models if values[m, dataset, kind].n and values[m, dataset, "clean"].n]
        missing = [label[m] for m in adv_models if m not in chosen]
        if missing:
            notes.append(f"{dataset}: left out for want of a {kind} result: {', '.join(missing)}.")
        points[dataset] = [TradeoffPoint(label[m], ctx.infos[m].config.get("arch"), ctx.infos[m].adv,
                                         ctx.infos[m].config.get("beta"), values[m, dataset, "clean"],
                                         values[m, dataset, kind]) for m in chosen]
    return {d: p for d, p in points.items() if p}, attack, notes


def _sweep_curves(ctx: ReportContext):
    if ctx.rows.empty:
        return {}, {}, {}
    rows = ctx.linf_rows
    attacked = rows[(rows["family"] == "attack") & rows["kind"].notna() & (rows["split"] == ctx.split)]
    radii = sorted({round(float(e), 6) for e in attacked["eps"].dropna()})
    by_eps = {e: pooled(per_checkpoint(rows, ctx.split, e)) for e in radii}
    curves, attack, archs = {}, {}, {}
    labels = attacked.drop_duplicates("model").set_index("model")["label"].to_dict()
    for dataset in dict.fromkeys(attacked["dataset_name"]):
        for kind in ("AutoAttack", "PGD"):
            lines = []
            for model, label in labels.items():
                points = [(e, by_eps[e][model, dataset, kind]) for e in radii
                          if (model, dataset, kind) in by_eps[e] and by_eps[e][model, dataset, kind].n]
                if len(points) >= 2:
                    lines.append((label, points))
                    archs[label] = ctx.infos[model].config.get("arch"), ctx.infos[model].adv
            if lines:
                curves[dataset], attack[dataset] = lines, kind
                break
    return curves, attack, archs


# -- the page ---------------------------------------------------------------------------------------------
def _skipped_section(skipped: list[str]) -> Section:
    if not skipped:
        return Section("Skipped", "Nothing was skipped.")
    return Section("Skipped", "What was not used, and why:\n\n" + "\n".join(f"- {_md(s)}" for s in skipped))


def _page(paths, inputs: ReportInputs, ctx: ReportContext, sections: list[Section]) -> str:
    made_from = ", ".join(f"`{p}`" for p in paths)
    lines = [f"{MARKER} written by partcli {__version__}; rerunning `partcli report` with this --out replaces it -->",
             "# partcli report", "",
             f"Made from {made_from}: {len(inputs.runs)} run folder(s), {len(inputs.sources)} results CSV(s), "
             f"{len(inputs.checklists)} hygiene checklist(s), {len(inputs.skipped)} thing(s) skipped "
             f"(listed at the end). Split `{ctx.split}`, ε = {eps_label(ctx.eps)}."]
    for s in sections:
        lines += ["", f"## {s.title}", "", s.body]
    return "\n".join(lines) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._]+", "-", name).strip("-") or "run"


def _unique(name: str, taken: dict[str, Figure]) -> str:
    stem, k = name.removesuffix(".png"), 2
    while name in taken:
        name, k = f"{stem}-{k}.png", k + 1
    return name


def _md(text: str) -> str:
    """User text in Markdown prose: no accidental emphasis or links."""
    return re.sub(r"([\\`*_\[\]<>])", r"\\\1", text)

