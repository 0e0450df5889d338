"""``partcli pretrain``, ``train``, ``sweep`` and ``pseudolabel``: the commands that train.

The options of pretrain/train and pseudolabel are their configuration dataclasses' fields (``partcli.options``):
add a field there and the option, its ``--help`` line, ``--config`` key and ``config.yaml`` entry follow.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from partcli.cli.app import app
from partcli.cli.common import config_parameter, pct, read_options
from partcli.cli.typer_options import given_options, typer_parameters, with_parameters
from partcli.errors import PartcliError
from partcli.options import ADVERSARY, RUN, spec_of
from partcli.progress import on_interrupt, plain, say, show


def _run_options(cls: type) -> list[inspect.Parameter]:
    """--config, --resume and --overwrite of the training commands (Run panel)."""
    resume = typer.Option("--resume", help="Continue the run in --out from checkpoints/last.pt with its stored "
                          "configuration; only --epochs (to extend), --workers, --device, --log-interval and --logger "
                          "may change.",
                          rich_help_panel=RUN)
    overwrite = typer.Option("--overwrite", help="Start the run afresh in a non-empty --out (its run files are "
                             "replaced; other files stay).", rich_help_panel=RUN)
    kw = inspect.Parameter.KEYWORD_ONLY
    return [config_parameter(cls, "options (a run's config.yaml works)"),
            inspect.Parameter("resume", kw, default=False, annotation=Annotated[bool, resume]),
            inspect.Parameter("overwrite", kw, default=False, annotation=Annotated[bool, overwrite])]


def _training_command(pretrain: bool):
    """``pretrain`` (clean: no Adversary options, no --init) or ``train``: one set of option definitions."""
    from partcli.train.config import TRAIN_ONLY, TrainConfig

    names = [f.name for f in TrainConfig.__dataclass_fields__.values() if spec_of(f) and
             not (pretrain and (spec_of(f).panel == ADVERSARY or f.name in TRAIN_ONLY))]

    def command(ctx: typer.Context, config: Optional[Path] = None, resume: bool = False, overwrite: bool = False,
                **options: Any) -> None:
        from partcli.config import read_config_file

        given = {**(read_config_file(TrainConfig, config) if config else {}),
                 **given_options(ctx, options, TrainConfig)}
        if pretrain and not resume:
            given["adv"] = "none"
        cfg = TrainConfig(**given)
        if not cfg.out:
            raise PartcliError("--out is required: the run folder to write (or to continue with --resume)")
        if not resume and not cfg.data:
            raise PartcliError("--data is required: a prepared dataset folder")
        if not resume:
            from partcli.train.validate import validate_config

            validate_config(cfg)  # before the heavy imports below: a bad option is refused at once
        from partcli.train.distributed import leave_distributed
        from partcli.train.loop import run_training

        on_interrupt(lambda: _training_kept(Path(cfg.out), "pretrain" if pretrain else "train"))
        try:
            out = run_training(cfg, resume=resume, overwrite=overwrite, given=set(given))
        finally:
            leave_distributed()
        say(f"run written to {out}")

    return with_parameters(command, lambda: [*typer_parameters(TrainConfig, names), *_run_options(TrainConfig)])


def _training_kept(out: Path, command: str) -> str:
    """What an interrupted pretrain/train kept, and the command that continues it (under torchrun as it ran)."""
    from partcli.train.run_files import last_epoch

    epoch = last_epoch(out)
    if epoch is None:
        return "no epoch had finished, nothing was kept"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = f"torchrun --nproc_per_node {world} -m partcli" if world > 1 else "partcli"
    return f"{out} keeps epoch {epoch} (checkpoints/last.pt); continue with: {launcher} {command} --out {out} --resume"


app.command("pretrain", help="Clean training (paper Eq. 5): class labels plus part masks, best checkpoint by "
            "validation accuracy.")(_training_command(pretrain=True))
app.command("train", help="Adversarial training with --adv pgd (Eq. 8, Eq. 9) or trades (Eq. 10, Eq. 11); best checkpoint "
            "by PGD validation accuracy. --adv defaults to none: clean training, as pretrain, that may start from "
            "--init.")(_training_command(pretrain=False))


def _sweep_command():
    from partcli.sweep.options import SweepOptions

    def command(ctx: typer.Context, **options: Any) -> None:
        opts = read_options(ctx, SweepOptions, None, options)
        from partcli.sweep import build_definition, list_sweep, run_sweep
        from partcli.sweep.plan import format_value
        from partcli.sweep.run import describe_picks

        if opts.out is None:
            raise PartcliError("--out is required: the sweep folder (sweep.yaml, sweep.csv and the points' run "
                               "folders)")
        if opts.list_points and opts.point is not None:
            raise PartcliError("--list and --point: give one (--list runs nothing, --point runs one point)")
        definition = build_definition(opts.data, config=opts.config, sets=opts.sets, grids=opts.grid,
                                      stages=opts.stage, picks=opts.pick, target_adv=opts.target_adv,
                                      margin=opts.margin)
        listed = opts.list_points
        state = (list_sweep(definition, opts.out) if listed
                 else run_sweep(definition, opts.out, point=opts.point, overwrite=opts.overwrite))
        table = Table(title=plain(f"sweep {opts.out}"))
        for column in ("point", "stage", *(["run"] if listed else []), *state.keys, "status", "val clean", "val adv",
                       "picked"):
            table.add_column(column, justify="left" if column == "run" else "right",
                             overflow="fold" if column == "run" else "ellipsis")
        for p in state.points:
            table.add_row(str(p.point.index), str(p.point.stage + 1), *([plain(p.run.name)] if listed else []),
                          *(plain(format_value(p.point.values[k])) if k in p.point.values else "" for k in state.keys),
                          p.status, pct(p.val_clean_acc), pct(p.val_adv_acc), "✓" if p.picked else "")
        show(table)
        for line in describe_picks(state):
            say(line)
        if not listed:
            say(f"summary written to {Path(opts.out) / 'sweep.csv'}")

    return with_parameters(command, typer_parameters(SweepOptions))


app.command("sweep", help="Hyper-parameter search (paper §3.5.3): grids of training runs in stages, resumable, with a "
            "summary CSV.")(_sweep_command())


def _pseudolabel_command():
    from partcli.pseudolabel.config import PseudoLabelConfig

    def command(ctx: typer.Context, config: Optional[Path] = None, overwrite: bool = False, **options: Any) -> None:
        from partcli.pseudolabel import pseudolabel as run_pseudolabel

        cfg = read_options(ctx, PseudoLabelConfig, config, options)
        for name in ("data", "out"):
            if not getattr(cfg, name):
                raise PartcliError(f"--{name} is required (see `partcli pseudolabel --help`)")
        result = run_pseudolabel(cfg, overwrite=overwrite)
        say(f"segmenter on val: pixel acc {pct(result.val_pixel_acc)}, mIoU {pct(result.val_miou)}")
        say(f"wrote {result.out}: {result.n_gt} gt + {result.n_pseudo} pseudo training masks; "
            f"segmenter {result.segmenter_checkpoint}")

    overwrite = inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--overwrite", help="Replace the prepared dataset in a non-empty --out (a folder that "
                           "holds other files is refused, not emptied).", rich_help_panel=RUN)])
    return with_parameters(command, [*typer_parameters(PseudoLabelConfig), config_parameter(PseudoLabelConfig),
                                     overwrite])


app.command("pseudolabel", help="Pseudo-labelling (§5.3, App. D.6): train a segmenter on --frac of the part masks, "
            "predict the rest.")(_pseudolabel_command())


