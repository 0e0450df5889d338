"""``partcli compare``, ``visualize`` and ``report``: statistics over results files, figures of what a model sees,
and the one-page report. Their options are their configuration dataclasses' fields (``partcli.options``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from partcli.cli.app import app
from partcli.cli.common import (argument_parameter, config_parameter, model_input, model_input_parameters,
                                read_options)
from partcli.cli.typer_options import typer_parameters, with_parameters
from partcli.progress import say, show


def _compare_command():
    from partcli.evaluate.config import CompareConfig

    def command(ctx: typer.Context, csv: list[Path], config: Optional[Path] = None, **options: Any) -> None:
        cfg = read_options(ctx, CompareConfig, config, options)
        from partcli.evaluate.compare import check_summary_out, compare_results, compare_table, write_summary
        from partcli.progress import info

        if cfg.out is not None:
            check_summary_out(cfg.out)
        result = compare_results(csv, cfg.by, cfg.metric, cfg.attack or None, cfg.ref)
        if cfg.out is not None:  # written before anything is printed: a failed write is the command's only output
            write_summary(result.summary, cfg.out)
        if cfg.json_output:
            records = result.summary.astype(object).where(result.summary.notna(), None).to_dict("records")
            print("\n".join(json.dumps(r, sort_keys=True, default=str) for r in records), flush=True)
        else:
            show(compare_table(result, cfg.metric))
        for note in result.notes:
            info(note)
        if cfg.out is not None:
            say(f"wrote {cfg.out}")

    csv = typer.Argument(help="Results CSV(s) of evaluate, attack or robustness.")
    return with_parameters(command, [argument_parameter("csv", Annotated[list[Path], csv]),
                                     *typer_parameters(CompareConfig), config_parameter(CompareConfig)])


app.command("compare", help="Mean ± 95 % CI over seeds per group and Welch's t-test p-values, as in the paper's "
            "Tables 2-4.")(_compare_command())


def _visualize_command():
    from partcli.mask_views.config import VisualizeConfig

    def command(ctx: typer.Context, config: Optional[Path] = None, **options: Any) -> None:
        inputs = model_input(ctx, options)
        cfg = read_options(ctx, VisualizeConfig, config, options)
        from partcli.progress import info
        from partcli.runtime import pick_device
        from partcli.mask_views import visualize

        result = visualize(inputs.ckpt, inputs.data, cfg.out, split=cfg.split, n=cfg.n, seed=cfg.seed,
                           attack=cfg.attack, eps=cfg.eps, steps=cfg.steps, step_size=cfg.step_size,
                           device=str(pick_device(cfg.device)), batch_size=cfg.batch_size, model=inputs.model,
                           image_size=inputs.image_size, fmt=cfg.format)
        for note in result.notes:
            info(note)
        adv = "" if result.adv_correct is None else f", {result.adv_correct} under --attack {cfg.attack}"
        say(f"wrote {result.out}: {result.n} samples, {result.clean_correct} classified correctly{adv}")

    return with_parameters(command, [*model_input_parameters(), *typer_parameters(VisualizeConfig),
                                     config_parameter(VisualizeConfig)])


app.command("visualize", help="Draw images with their true and predicted part masks (and under --attack), part "
            "colours fixed per id.")(_visualize_command())


def _report_command():
    from partcli.report.config import ReportConfig

    def command(ctx: typer.Context, paths: list[Path], config: Optional[Path] = None, **options: Any) -> None:
        cfg = read_options(ctx, ReportConfig, config, options)
        from partcli.report.report import build_report

        result = build_report(paths, cfg.out, split=cfg.split, eps=cfg.eps, overwrite=cfg.overwrite, fmt=cfg.format)
        figures = sum(len(s.figures) for s in result.sections)
        tables = sorted({name for s in result.sections for name in s.files})
        say(f"wrote {result.out / 'index.md'}, index.html, {figures} {cfg.format.upper()} figure(s)"
            + "".join(f", {name}" for name in tables) + f"; {len(result.skipped)} thing(s) skipped (listed in the "
            "report)")

    paths = typer.Argument(help="Run folders, results CSVs (attack, evaluate, robustness), or folders holding them "
                           "(searched recursively).")
    return with_parameters(command, [argument_parameter("paths", Annotated[list[Path], paths]),
                                     *typer_parameters(ReportConfig), config_parameter(ReportConfig)])


app.command("report", help="One page of tables and plots: Table 1 (mean ± CI over seeds), trade-off, ε sweep, "
            "robustness, hygiene, curves.")(_report_command())
