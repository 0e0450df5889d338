"""``partcli evaluate``, ``attack``, ``robustness`` and ``info``: the commands that measure a model or describe a
file. Their options are their configuration dataclasses' fields plus the model input (``partcli.options``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from partcli.cli.app import app
from partcli.cli.common import (config_parameter, emit_json, model_input, model_input_parameters, pct, pop_fields,
                                read_options)
from partcli.cli.typer_options import typer_parameters, with_parameters
from partcli.errors import PartcliError
from partcli.options import RUN
from partcli.progress import error, plain, say, show


def _evaluate_command():
    from partcli.evaluate.config import EvaluateConfig

    def command(ctx: typer.Context, config: Optional[Path] = None, **options: Any) -> None:
        inputs = model_input(ctx, options)
        cfg = read_options(ctx, EvaluateConfig, config, options)
        from partcli.evaluate.evaluate import evaluate_checkpoint

        result = evaluate_checkpoint(inputs.ckpt, inputs.data, cfg.split, cfg.out, cfg.batch_size, cfg.device,
                                     inputs.image_size, cfg.workers, model=inputs.model)
        if cfg.json_output:
            emit_json([result.row], cfg.out, "evaluate")
        table = Table(title=plain(f"{inputs.ckpt or inputs.model} on {inputs.data} [{cfg.split}]"))
        for column in ("n", "clean acc", "pixel acc", "foreground pixel acc", "mIoU", "seconds"):
            table.add_column(column, justify="right")
        table.add_row(str(result.n), pct(result.clean_acc), pct(result.pixel_acc), pct(result.fg_pixel_acc),
                      pct(result.miou), f"{result.seconds:.1f}")
        show(table, cfg.json_output)
        say(f"appended to {cfg.out}")

    return with_parameters(command, [*model_input_parameters(), *typer_parameters(EvaluateConfig),
                                     config_parameter(EvaluateConfig)])


app.command("evaluate", help="Clean accuracy and part-mask pixel accuracy / mIoU on a split; appends a row to a "
            "CSV.")(_evaluate_command())


def _attack_command():
    from partcli.attacks.config import AttackConfig, AttackOutput

    def command(ctx: typer.Context, config: Optional[Path] = None, **options: Any) -> None:
        from partcli.attacks.validate import validate_config

        inputs = model_input(ctx, options)
        output = read_options(ctx, AttackOutput, None, pop_fields(options, AttackOutput))
        cfg = read_options(ctx, AttackConfig, config, options)
        validate_config(cfg)  # before the heavy imports below, on every rank alike: a bad option is refused at once
        if output.strict and not cfg.hygiene:
            raise PartcliError("--strict fails the command on a failed hygiene check: drop --no-hygiene")
        from partcli.attacks.hygiene import format_checklist
        from partcli.attacks.suite import run_attack_suite
        from partcli.config import eps_label
        from partcli.progress import info
        from partcli.shards import join_ranks
        from partcli.train.distributed import leave_distributed

        try:  # under torchrun the ranks share the attacks; rank 0 alone writes and prints
            shard = join_ranks(cfg.device)
            result = run_attack_suite(inputs.ckpt, inputs.data, cfg, output.out, model=inputs.model,
                                      image_size=inputs.image_size, shard=shard)
        finally:
            leave_distributed()
        failed = [c.name for c in result.checks if c.status == "warn"]
        if not shard.is_main:
            raise typer.Exit(3 if output.strict and failed else 0)
        if output.json_output:
            emit_json(result.rows, output.out, cfg.suite)
        table = Table(title=plain(f"{inputs.ckpt or inputs.model} on {inputs.data} [{cfg.split}], suite {cfg.suite}"))
        columns = ("attack", "eps", "n", "clean acc", "adv acc", "clean pixel acc", "adv pixel acc", "seconds")
        for column in columns:
            table.add_column(column, justify="left" if column == "attack" else "right")
        for row in result.rows:
            table.add_row(plain(row["attack"]), eps_label(row["eps"], row.get("norm", "Linf")), str(row["n"]),
                          pct(row.get("clean_acc")), pct(row.get("adv_acc")), pct(row.get("clean_pixel_acc")),
                          pct(row.get("adv_pixel_acc")), f"{row.get('seconds') or 0.0:.1f}")
        show(table, output.json_output)
        for note in result.notes:
            info(note)
        if result.checks:
            show(format_checklist(result.checks), output.json_output)
        say(f"appended to {output.out}; per-sample outcomes in {result.samples_path}")
        if output.strict and failed:
            error(f"--strict: hygiene check(s) failed: {', '.join(failed)}")
            raise typer.Exit(3)

    return with_parameters(command, lambda: [*model_input_parameters(), *typer_parameters(AttackConfig),
                                             *typer_parameters(AttackOutput), config_parameter(AttackConfig)])


app.command("attack", help="Measure robustness: AutoAttack, PGD, segmenter-guided attacks, ε sweep; prints a "
            "hygiene checklist.")(_attack_command())


@app.command("info")
def info_cmd(
    path: Annotated[Optional[Path], typer.Argument(help="A checkpoint file or a prepared dataset folder.")] = None,
    models: Annotated[bool, typer.Option("--models", rich_help_panel=RUN, help="List the architectures (--arch) and "
                                         "where --backbone names come from.")] = False,
    json_output: Annotated[bool, typer.Option("--json", rich_help_panel=RUN, help="Print the checkpoint's or "
                                              "dataset's summary as one JSON object (a checkpoint's whole "
                                              "configuration under 'config').")] = False,
) -> None:
    """Print a checkpoint's or a prepared dataset's summary, or the architectures partcli builds."""
    from partcli.summary import describe, describe_models, summarize

    if models == (path is not None):
        raise PartcliError("info: give a checkpoint or dataset PATH, or --models (not both)")
    if json_output and models:
        raise PartcliError("--json: give a checkpoint or dataset PATH (--models is a table only)")
    if json_output:
        print(json.dumps(summarize(path), sort_keys=True, default=str), flush=True)
    else:
        show(describe_models() if models else describe(path))


def _robustness_command():
    from partcli.robustness.config import RobustnessConfig

    def command(ctx: typer.Context, config: Optional[Path] = None, **options: Any) -> None:
        inputs = model_input(ctx, options)
        cfg = read_options(ctx, RobustnessConfig, config, options)
        from partcli.progress import info
        from partcli.robustness.corruptions import CORRUPTIONS, SEVERITIES
        from partcli.robustness.suite import robustness_tables, run_robustness
        from partcli.runtime import pick_device
        from partcli.shards import join_ranks
        from partcli.train.distributed import leave_distributed

        try:  # under torchrun the ranks share the sets; rank 0 alone writes and prints
            shard = join_ranks(cfg.device)
            with shard.together():
                picked = str(pick_device(cfg.device, shard.local_rank))
            result = run_robustness(inputs.ckpt, inputs.data, suite=cfg.suite, split=cfg.split, out=cfg.out,
                                    corruptions=cfg.corruption or CORRUPTIONS, severities=cfg.severity or SEVERITIES,
                                    seed=cfg.seed, batch_size=cfg.batch_size, device=picked, cache=cfg.cache,
                                    stylizer=cfg.stylizer, imagenet9=cfg.imagenet9, stylized=cfg.stylized,
                                    model=inputs.model, image_size=inputs.image_size, shard=shard)
        finally:
            leave_distributed()
        if not shard.is_main:
            return
        if cfg.json_output:
            emit_json(result.rows, cfg.out, "robustness")
        for table in robustness_tables(result, f"{inputs.ckpt or inputs.model} on {inputs.data} [{cfg.split}]"):
            show(table, cfg.json_output)
        for note in result.notes:
            info(note)
        say(f"appended to {cfg.out}")

    data_help = "Prepared dataset the model was trained for (its masks make the foreground and shape-texture sets)."
    return with_parameters(command, [*model_input_parameters(data_help), *typer_parameters(RobustnessConfig),
                                     config_parameter(RobustnessConfig)])


app.command("robustness", help="Non-adversarial robustness (paper §5.1): corruptions, foreground/background, shape "
            "vs texture.")(_robustness_command())
