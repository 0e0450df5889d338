"""The ``partcli`` command line: parses options and calls the Python API; nothing else lives here.

The options of ``pretrain``/``train``, ``pseudolabel`` and ``attack`` are their configuration dataclasses' fields
(``partcli.options``): add a field there and the option, its ``--help`` line, ``--config`` key and ``config.yaml``
entry follow.
"""
from __future__ import annotations

import inspect
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from partcli.config import MAX_SEED, help_default
from partcli.errors import PartcliError
from partcli.help import HelpGroup
from partcli.options import (ADVERSARY, DATA, MODEL, SEARCH, SHIFTS, SUMMARY, RUN, RUNTIME, Choice, Device, FigureFormat, Split, given_options,
                             spec_of, typer_parameters, with_parameters)
from partcli.progress import error, interrupt_note, on_interrupt, plain, say, set_quiet, show
from partcli.version import __version__

# click's UsageError, the base of Typer's parsing errors; Typer ≥ 0.22 vendors click and exports only BadParameter
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

app = typer.Typer(help="Train and honestly evaluate adversarially robust part-based image classifiers.",
                  cls=HelpGroup, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
prepare_app = typer.Typer(help="Turn a dataset into the prepared-dataset format (docs/formats.md, prepared dataset).",
                          cls=HelpGroup, no_args_is_help=True)
app.add_typer(prepare_app, name="prepare")
import_app = typer.Typer(help="Turn model files written by other code into partcli checkpoints.", cls=HelpGroup,
                         no_args_is_help=True)
app.add_typer(import_app, name="import")

Out = Annotated[Path, typer.Option("--out", help="Output folder (must not exist or be empty).", rich_help_panel=RUN)]
Overwrite = Annotated[bool, typer.Option("--overwrite", rich_help_panel=RUN, help="Replace the prepared dataset in a non-empty --out "
                                         "(a folder that holds other files is refused, not emptied).")]
Seed = Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, rich_help_panel=RUN,
                                   help="Seed for every random choice (0 to 2^32 − 1); same seed, same result.")]
Src = Annotated[Path, typer.Option("--src", rich_help_panel=DATA, help="Folder holding the official download.")]
Strict = Annotated[bool, typer.Option("--strict", rich_help_panel=DATA, help="Stop at the first undecodable image instead of skipping it.")]


Ckpt = Annotated[Optional[Path], typer.Option("--ckpt", help="A partcli checkpoint (.pt); or give --model.",
                                              rich_help_panel=DATA)]
AnyModel = Annotated[Optional[str], typer.Option(
    "--model", help="Any model instead of --ckpt: FILE.py:FUNCTION (FUNCTION() returns an nn.Module mapping N×3×H×W "
    "images in [0, 1] to logits), a torch.export .pt2 file or a TorchScript file.", rich_help_panel=DATA)]
ModelSize = Annotated[Optional[int], typer.Option(
    "--image-size", help="Resolution the model sees, a multiple of 16.",
    show_default="a checkpoint's training size; 224 for --model", rich_help_panel=DATA)]
Json = Annotated[bool, typer.Option("--json", help="Also print one JSON object per result row on stdout "
                                    "(RobustBench's keys where they exist) and write them beside --out as "
                                    "<stem>.<kind>.<k>.json.", rich_help_panel=RUN)]


class OverlapProtocol(Choice):
    """Where part annotations overlap: the paper authors' data rules, or partcli's earlier ones."""

    AUTHORS = "authors"
    LARGEST_FIRST = "largest-first"


class CityscapesProtocol(Choice):
    """Which objects and crops: the paper authors' data script, or the paper's App. A text."""

    AUTHORS = "authors"
    TEXT = "text"


class RobustnessSuite(Choice):  # partcli.robustness.suite.SUITES
    CORRUPTIONS = "corruptions"
    FOREGROUND = "foreground"
    SHAPE_TEXTURE = "shape-texture"
    ALL = "all"


class VisualAttack(Choice):  # partcli.report.visualize.ATTACKS
    PGD = "pgd"
    AUTOATTACK = "autoattack"


class KnownDataset(Choice):  # partcli.interop.dataset_names.KNOWN_DATASETS
    PART_IMAGENET = "part-imagenet"
    CITYSCAPES = "cityscapes"
    PASCAL_PART = "pascal-part"


def _version(value: bool) -> None:
    if value:
        print(f"partcli {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or info lines (may also follow the "
                                        "command).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="With an error, also print where it arose (the "
                                          "traceback), e.g. for a bug report (may also follow the command).")
                       ] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the partcli version and exit.", callback=_version,
                                          is_eager=True)] = False,
) -> None:
    set_quiet(quiet)
    _verbose["on"] = verbose


# ---------------------------------------------------------------------------------------------- prepare
@prepare_app.command("synthetic")
def prepare_synthetic_cmd(
    out: Out,
    n: Annotated[int, typer.Option(rich_help_panel=DATA, help="Number of images (at most 1,000,000).")] = 3000,
    image_size: Annotated[int, typer.Option(rich_help_panel=DATA, help="Side of the square images in pixels (16 to 2048).")] = 64,
    n_val: Annotated[Optional[int], typer.Option(rich_help_panel=DATA, help="Validation images, the same number "
                                                 "per class (a multiple of 5); default 10 % of --n.")] = None,
    n_test: Annotated[Optional[int], typer.Option(rich_help_panel=DATA, help="Test images, the same number per "
                                                  "class (a multiple of 5); default 10 % of --n. The rest "
                                                  "is train.")] = None,
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """A procedural dataset of objects made of class-specific parts; needs no download."""
    from partcli.data.synthetic import prepare_synthetic

    _report_dataset(prepare_synthetic(out, n=n, image_size=image_size, seed=seed, overwrite=overwrite,
                                      n_val=n_val, n_test=n_test), out)


@prepare_app.command("part-imagenet")
def prepare_part_imagenet_cmd(
    src: Src, out: Out, seed: Seed = 0, strict: Strict = False, overwrite: Overwrite = False,
    protocol: Annotated[OverlapProtocol, typer.Option(
        rich_help_panel=DATA, help="Where the release is ambiguous. authors: as the paper's data (annotations painted in json order, "
             "later over earlier; those of json area 0 skipped; an image with parts of several classes gives one "
             "sample per class; parts in the json's category order). largest-first: partcli's earlier rule "
             "(largest annotation painted first; a mixed image labelled with its largest-area class only; parts "
             "by category id).")] = OverlapProtocol.AUTHORS,
) -> None:
    """Part-ImageNet (JPEGImages/ + COCO train/val/test.json), re-split i.i.d. 80/10/10 per class."""
    from partcli.data.prepare_part_imagenet import prepare_part_imagenet

    _report_dataset(prepare_part_imagenet(src, out, seed=seed, overwrite=overwrite, strict=strict,
                                          protocol=protocol.value), out)


@prepare_app.command("cityscapes")
def prepare_cityscapes_cmd(
    src: Src, out: Out,
    protocol: Annotated[CityscapesProtocol, typer.Option(
        rich_help_panel=DATA, help="Which objects and crops. authors: as the paper's data (29,728 samples on the full release): "
             "instance 0 of a category skipped, a crowd is one object, occluded when one category of the other "
             "class covers over half as many box pixels as the object's category, square crop shifted at random, "
             "mask with every human's and vehicle's parts. text: as the paper's App. A describes it: every "
             "instance, centred square, only the instance's parts.")] = CityscapesProtocol.AUTHORS,
    min_area: Annotated[int, typer.Option(rich_help_panel=DATA, help="Skip objects with fewer pixels.")] = 1000,
    pad: Annotated[Optional[float], typer.Option(
        rich_help_panel=DATA, help="Crop padding as a fraction of the object's side. authors: int(pad*side) on each side and a random "
             "shift of up to 2*pad of the crop; text: 0 to pad extra, centred.",
        show_default="0.2 with authors, 0.1 with text")] = None,
    seed: Seed = 0,
    workers: Annotated[Optional[int], typer.Option(rich_help_panel=RUNTIME, help="Processes cropping the images.", show_default="all cores")] = None,
    strict: Strict = False, overwrite: Overwrite = False,
) -> None:
    """Cityscapes + Cityscapes-Panoptic-Parts: human vs vehicle crops with 9 parts."""
    from partcli.data.prepare_cityscapes import prepare_cityscapes

    info = prepare_cityscapes(src, out, protocol=protocol.value, min_area=min_area, pad=pad, seed=seed, workers=workers,
                              overwrite=overwrite, strict=strict)
    _report_dataset(info, out)


@prepare_app.command("pascal-part")
def prepare_pascal_part_cmd(
    src: Src, out: Out, seed: Seed = 0, strict: Strict = False, overwrite: Overwrite = False,
    protocol: Annotated[OverlapProtocol, typer.Option(
        rich_help_panel=DATA, help="Which part keeps a pixel where parts overlap. authors: as the paper's data (the largest object's "
             "parts first, then the other objects' in annotation order; within an object tail > wing > body, "
             "head > legs > body, wheel > window > body; the first part on a pixel keeps it; part names in no "
             "group stay background). largest-first: partcli's earlier rule (objects largest first, parts in "
             "annotation order, each over the earlier ones; unknown part names become body).")] = OverlapProtocol.AUTHORS,
) -> None:
    """PASCAL VOC 2010 + PASCAL-Part: five classes, 3 merged parts each, labelled by the largest object."""
    from partcli.data.prepare_pascal_part import prepare_pascal_part

    _report_dataset(prepare_pascal_part(src, out, seed=seed, overwrite=overwrite, strict=strict,
                                        protocol=protocol.value), out)


def _report_dataset(info, out: Path) -> None:
    total = sum(sum(c.values()) for c in info.counts.values())
    say(f"wrote {out}: {total} samples, {info.num_classes} classes, {info.num_parts} parts")


# ---------------------------------------------------------------------------------------------- import
@import_app.command("adv-part-model")
def import_adv_part_model_cmd(
    src: Annotated[Path, typer.Argument(help="A checkpoint of the paper authors' code (.pt/.pth), e.g. one of their "
                                             "released Table 1 models.")],
    out: Annotated[Path, typer.Option("--out", rich_help_panel=RUN, help="partcli checkpoint to write (.pt).")],
    data: Annotated[Optional[Path], typer.Option(rich_help_panel=DATA, help="Prepared dataset whose classes and parts name the model's "
                                                      "(their counts must match).")] = None,
    dataset: Annotated[Optional[KnownDataset], typer.Option(rich_help_panel=DATA, help="part-imagenet, cityscapes or pascal-part: take that "
                                                        "dataset's classes and parts.",
                                                   show_default="the file's args.dataset, else the one dataset with "
                                                                "the model's counts")] = None,
    experiment: Annotated[Optional[str], typer.Option(rich_help_panel=MODEL, help="The authors' --experiment string (e.g. "
                                                           "part-wbbox-norm_img-semi), for a file without its args.")]
    = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", rich_help_panel=RUN, help="Replace an existing --out.")] = False,
) -> None:
    """The paper authors' bounding-box, downsampled or ResNet model as a partcli checkpoint (no pickled code run)."""
    from partcli.interop.import_checkpoint import import_adv_part_model

    r = import_adv_part_model(src, out, data=data, dataset=None if dataset is None else dataset.value, experiment=experiment, overwrite=overwrite)
    m = r.recognised
    labels = "" if m.channels is None else f", {m.channels} {m.seg_labels} labels"
    say(f"wrote {r.out}: {m.arch} model ({m.backbone}, {m.num_classes} classes{labels}) from {src}, the authors' "
        f"{m.experiment!r} ({r.naming} keys, recognised from {r.recognised_from}); {r.tensors} tensors placed; "
        f"names from {r.names.origin}")


# ---------------------------------------------------------------------------------------------- training
def _config_defaults(cls: type):
    """``--config`` callback: the file's values become the defaults ``--help`` shows (put --config first)."""

    def callback(ctx: typer.Context, value: Optional[Path]) -> Optional[Path]:
        if value is not None and not ctx.resilient_parsing:
            from partcli.config import read_config_file

            shown = {k: help_default(v) for k, v in read_config_file(cls, value).items()
                     if spec_of(cls.__dataclass_fields__[k]) and spec_of(cls.__dataclass_fields__[k]).cli}
            ctx.default_map = {**(ctx.default_map or {}), **shown}
        return value

    return callback


def _run_options(cls: type) -> list[inspect.Parameter]:
    """--config, --resume and --overwrite of the training commands (Run panel)."""
    config = typer.Option("--config", help="YAML file of options (a run's config.yaml works); options given here "
                          "win. Given before --help, its values show as the defaults.", rich_help_panel=RUN,
                          is_eager=True, callback=_config_defaults(cls))
    resume = typer.Option("--resume", help="Continue the run in --out from checkpoints/last.pt with its stored "
                          "configuration; only --epochs (to extend), --workers, --device, --log-interval and --logger "
                          "may change.",
                          rich_help_panel=RUN)
    overwrite = typer.Option("--overwrite", help="Start the run afresh in a non-empty --out (its run files are "
                             "replaced; other files stay).", rich_help_panel=RUN)
    kw = inspect.Parameter.KEYWORD_ONLY
    return [inspect.Parameter("config", kw, default=None, annotation=Annotated[Optional[Path], config]),
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


@app.command("sweep")
def sweep(
    data: Annotated[Optional[Path], typer.Option(help="Prepared dataset folder (default: the --config file's data).",
                                                 rich_help_panel=DATA)] = None,
    out: Annotated[Optional[Path], typer.Option(help="Sweep folder: sweep.yaml, sweep.csv and one run folder per "
                                                "point.", rich_help_panel=RUN)] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML file of training options shared by every point (as "
                                                   "train's --config).", rich_help_panel=RUN)] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", rich_help_panel=SEARCH, help="KEY=VALUE: fix a training option for every "
                                                      "point, e.g. --set adv=pgd; repeatable.")] = None,
    grid: Annotated[Optional[list[str]], typer.Option(rich_help_panel=SEARCH, help="KEY=V1,V2,...: sweep an option; the --grid options "
                                                      "make one stage, their cartesian product; repeatable.")] = None,
    stage: Annotated[Optional[list[str]], typer.Option(rich_help_panel=SEARCH, help="\"K=V1,V2 K2=...\": one stage (a cartesian product), "
                                                       "repeatable, in order; each starts from the values picked "
                                                       "in the stages before it.")] = None,
    pick: Annotated[Optional[list[str]], typer.Option(rich_help_panel=SEARCH, help="Pick rule: adv (best val adversarial accuracy; clean "
                                                      "runs: clean), clean-at-adv (best val clean accuracy among "
                                                      "val adversarial accuracy ≥ --target-adv − --margin) or none "
                                                      "(last stage only); one for all stages, or one per stage.",
                                                      show_default="adv")] = None,
    target_adv: Annotated[Optional[str], typer.Option(rich_help_panel=SEARCH, help="clean-at-adv: the validation adversarial accuracy to "
                                                      "match, as a fraction (e.g. the baseline's 0.42).")] = None,
    margin: Annotated[str, typer.Option(rich_help_panel=SEARCH, help="clean-at-adv: how far below --target-adv a point may be, as a "
                                        "fraction.")] = "0.01",
    list_: Annotated[bool, typer.Option("--list", rich_help_panel=RUN, help="Print the points, their run folders and status "
                                        "(done, partial, todo); run nothing.")] = False,
    point: Annotated[Optional[int], typer.Option(rich_help_panel=RUN, help="Run only this point (numbered as --list shows), e.g. one "
                                                 "cluster job per point of a stage.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Accept a changed sweep definition in --out (run "
                                            "folders of changed points are still refused).",
                                            rich_help_panel=RUN)] = False,
) -> None:
    """Hyper-parameter search (paper §3.5.3): grids of training runs in stages, resumable, with a summary CSV."""
    from partcli.sweep import build_definition, list_sweep, run_sweep
    from partcli.sweep.plan import format_value
    from partcli.sweep.run import describe_picks

    if out is None:
        raise PartcliError("--out is required: the sweep folder (sweep.yaml, sweep.csv and the points' run folders)")
    if list_ and point is not None:
        raise PartcliError("--list and --point: give one (--list runs nothing, --point runs one point)")
    definition = build_definition(data, config=config, sets=set_ or [], grids=grid or [], stages=stage or [],
                                  picks=pick or [], target_adv=target_adv, margin=margin)
    state = list_sweep(definition, out) if list_ else run_sweep(definition, out, point=point, overwrite=overwrite)
    table = Table(title=plain(f"sweep {out}"))
    for column in ("point", "stage", *(["run"] if list_ else []), *state.keys, "status", "val clean", "val adv",
                   "picked"):
        table.add_column(column, justify="left" if column == "run" else "right",
                         overflow="fold" if column == "run" else "ellipsis")
    for p in state.points:
        table.add_row(str(p.point.index), str(p.point.stage + 1), *([plain(p.run.name)] if list_ else []),
                      *(plain(format_value(p.point.values[k])) if k in p.point.values else "" for k in state.keys),
                      p.status, _pct(p.val_clean_acc), _pct(p.val_adv_acc), "✓" if p.picked else "")
    show(table)
    for line in describe_picks(state):
        say(line)
    if not list_:
        say(f"summary written to {Path(out) / 'sweep.csv'}")


def _pseudolabel_command():
    from partcli.pseudolabel.config import PseudoLabelConfig

    def command(ctx: typer.Context, overwrite: bool = False, **options: Any) -> None:
        from partcli.pseudolabel import pseudolabel as run_pseudolabel

        cfg = PseudoLabelConfig(**given_options(ctx, options, PseudoLabelConfig))
        for name in ("data", "out"):
            if not getattr(cfg, name):
                raise PartcliError(f"--{name} is required (see `partcli pseudolabel --help`)")
        result = run_pseudolabel(cfg, overwrite=overwrite)
        say(f"segmenter on val: pixel acc {_pct(result.val_pixel_acc)}, mIoU {_pct(result.val_miou)}")
        say(f"wrote {result.out}: {result.n_gt} gt + {result.n_pseudo} pseudo training masks; "
            f"segmenter {result.segmenter_checkpoint}")

    overwrite = inspect.Parameter("overwrite", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[
        bool, typer.Option("--overwrite", help="Replace the prepared dataset in a non-empty --out (a folder that "
                           "holds other files is refused, not emptied).", rich_help_panel=RUN)])
    return with_parameters(command, [*typer_parameters(PseudoLabelConfig), overwrite])


app.command("pseudolabel", help="Pseudo-labelling (§5.3, App. D.6): train a segmenter on --frac of the part masks, "
            "predict the rest.")(_pseudolabel_command())


# ---------------------------------------------------------------------------------------------- evaluation
@app.command()
def evaluate(
    data: Annotated[Path, typer.Option(help="Prepared dataset folder.", rich_help_panel=DATA)],
    ckpt: Ckpt = None,
    model: AnyModel = None,
    split: Annotated[Split, typer.Option(help="Split to evaluate.", rich_help_panel=DATA)] = Split.TEST,
    image_size: ModelSize = None,
    json_output: Json = False,
    out: Annotated[Path, typer.Option(help="CSV to append the result row to.", rich_help_panel=RUN)]
    = Path("results/evaluate.csv"),
    batch_size: Annotated[int, typer.Option(help="Samples per batch.", rich_help_panel=RUNTIME)] = 64,
    device: Annotated[Device, typer.Option(help="auto (CUDA when available), cpu or cuda.",
                                           rich_help_panel=RUNTIME)] = Device.AUTO,
    workers: Annotated[str, typer.Option(help="DataLoader worker processes: a number, or auto (on CUDA the CPU "
                                         "count, capped at 8, with pinned memory; 0 on the CPU).",
                                         rich_help_panel=RUNTIME)] = "auto",
) -> None:
    """Clean accuracy and part-mask pixel accuracy / mIoU on a split; appends a row to a CSV."""
    from partcli.config import parse_workers
    from partcli.evaluate.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(ckpt, data, split.value, out, batch_size, device.value, image_size,
                                 parse_workers(workers, "--workers"), model=model)
    if json_output:
        _emit_json([result.row], out, "evaluate")
    table = Table(title=plain(f"{ckpt or model} on {data} [{split.value}]"))
    for column in ("n", "clean acc", "pixel acc", "foreground pixel acc", "mIoU", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(str(result.n), _pct(result.clean_acc), _pct(result.pixel_acc), _pct(result.fg_pixel_acc),
                  _pct(result.miou), f"{result.seconds:.1f}")
    show(table, json_output)
    say(f"appended to {out}")


def _attack_command():
    from partcli.attacks.config import ATTACK_CSV, AttackConfig

    def command(ctx: typer.Context, data: Path, ckpt: Optional[Path] = None, model: Optional[str] = None,
                image_size: Optional[int] = None, json_output: bool = False, strict: bool = False,
                out: Path = ATTACK_CSV, **options: Any) -> None:
        from partcli.attacks.validate import validate_config

        cfg = AttackConfig(**given_options(ctx, options, AttackConfig))
        validate_config(cfg)  # before the heavy imports below, on every rank alike: a bad option is refused at once
        if strict and not cfg.hygiene:
            raise PartcliError("--strict fails the command on a failed hygiene check: drop --no-hygiene")
        from partcli.attacks.suite import run_attack_suite
        from partcli.config import eps_label
        from partcli.attacks.hygiene import format_checklist
        from partcli.progress import info
        from partcli.shards import join_ranks
        from partcli.train.distributed import leave_distributed

        try:  # under torchrun the ranks share the attacks; rank 0 alone writes and prints
            shard = join_ranks(options["device"])
            result = run_attack_suite(ckpt, data, cfg, out, model=model, image_size=image_size, shard=shard)
        finally:
            leave_distributed()
        failed = [c.name for c in result.checks if c.status == "warn"]
        if not shard.is_main:
            raise typer.Exit(3 if strict and failed else 0)
        if json_output:
            _emit_json(result.rows, out, cfg.suite)
        table = Table(title=plain(f"{ckpt or model} on {data} [{cfg.split}], suite {cfg.suite}"))
        columns = ("attack", "eps", "n", "clean acc", "adv acc", "clean pixel acc", "adv pixel acc", "seconds")
        for column in columns:
            table.add_column(column, justify="left" if column == "attack" else "right")
        for row in result.rows:
            table.add_row(plain(row["attack"]), eps_label(row["eps"], row.get("norm", "Linf")), str(row["n"]), _pct(row.get("clean_acc")),
                          _pct(row.get("adv_acc")), _pct(row.get("clean_pixel_acc")), _pct(row.get("adv_pixel_acc")),
                          f"{row.get('seconds') or 0.0:.1f}")
        show(table, json_output)
        for note in result.notes:
            info(note)
        if result.checks:
            show(format_checklist(result.checks), json_output)
        say(f"appended to {out}; per-sample outcomes in {result.samples_path}")
        if strict and failed:
            error(f"--strict: hygiene check(s) failed: {', '.join(failed)}")
            raise typer.Exit(3)

    kw = inspect.Parameter.KEYWORD_ONLY
    files = [
        inspect.Parameter("data", kw, annotation=Annotated[Path, typer.Option(
            help="Prepared dataset the model was trained for.", rich_help_panel=DATA)]),
        inspect.Parameter("ckpt", kw, default=None, annotation=Ckpt),
        inspect.Parameter("model", kw, default=None, annotation=AnyModel),
        inspect.Parameter("image_size", kw, default=None, annotation=ModelSize),
    ]
    out = [inspect.Parameter("json_output", kw, default=False, annotation=Json),
           inspect.Parameter("strict", kw, default=False, annotation=Annotated[bool, typer.Option(
               "--strict", help="Exit with status 3 when a hygiene check fails (results are still written), e.g. "
               "to fail a CI job.", rich_help_panel=RUN)]),
           inspect.Parameter("out", kw, default=ATTACK_CSV, annotation=Annotated[Path, typer.Option(
               help="Metrics CSV to append to; per-sample outcomes go beside it as <stem>.<suite>.<k>.samples.csv.",
               rich_help_panel=RUN)])]
    return with_parameters(command, lambda: [*files, *typer_parameters(AttackConfig), *out])  # suites: a registry


app.command("attack", help="Measure robustness: AutoAttack, PGD, segmenter-guided attacks, ε sweep; prints a "
            "hygiene checklist.")(_attack_command())


@app.command("info")
def info_cmd(
    path: Annotated[Optional[Path], typer.Argument(help="A checkpoint file or a prepared dataset folder.")] = None,
    models: Annotated[bool, typer.Option("--models", rich_help_panel=RUN, help="List the architectures (--arch) and where --backbone "
                                         "names come from.")] = False,
    json_output: Annotated[bool, typer.Option("--json", rich_help_panel=RUN, help="Print the checkpoint's or dataset's summary as one "
                                              "JSON object (a checkpoint's whole configuration under 'config').")
                           ] = False,
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


def _pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _emit_json(rows: list[dict[str, Any]], out: Path, kind: str) -> None:
    """``--json``: the rows as JSON lines on stdout, and as a JSON file beside the results CSV."""
    from partcli.evaluate.results_json import json_lines, json_path, write_json

    path = json_path(out, kind)
    write_json(path, rows)
    print(json_lines(rows), flush=True)
    say(f"wrote {path}")


# ---------------------------------------------------------------------------------------------- robustness
@app.command()
def robustness(
    data: Annotated[Path, typer.Option(rich_help_panel=DATA, help="Prepared dataset the model was trained for (its masks make the foreground and shape-texture sets).")],
    ckpt: Ckpt = None,
    model: AnyModel = None,
    image_size: ModelSize = None,
    json_output: Json = False,
    suite: Annotated[RobustnessSuite, typer.Option(rich_help_panel=SHIFTS, help="corruptions, foreground, shape-texture or all.")] = RobustnessSuite.ALL,
    split: Annotated[Split, typer.Option(rich_help_panel=DATA, help="Split to shift.")] = Split.TEST,
    out: Annotated[Path, typer.Option(rich_help_panel=RUN, help="Results CSV to append to (attack's columns + severity, shape_bias, bg_gap, seed).")] = Path("results/robustness.csv"),
    corruption: Annotated[Optional[list[str]], typer.Option(rich_help_panel=SHIFTS, help="Corruption type, repeatable.", show_default="the 15 ImageNet-C types")] = None,
    severity: Annotated[Optional[list[int]], typer.Option(rich_help_panel=SHIFTS, help="Corruption severity 1-5, repeatable.", show_default="1 to 5")] = None,
    seed: Annotated[int, typer.Option(rich_help_panel=RUN, help="Seed of the corruptions and of the background and texture pairings.")] = 0,
    cache: Annotated[Optional[Path], typer.Option(rich_help_panel=RUNTIME, help="Folder of the cached corrupted images.", show_default="DATA/.cache/corruptions")] = None,
    stylizer: Annotated[Optional[Path], typer.Option(rich_help_panel=SHIFTS, help="A torch.export program (content, style) -> stylized image, each 1x3xSxS in [0, 1]: adds a 'stylized' shape-texture set.")] = None,
    imagenet9: Annotated[Optional[Path], typer.Option(rich_help_panel=SHIFTS, help="ImageNet-9 Backgrounds Challenge release folder (<variant>/val/<NN_class>/): adds its in9/* rows to --suite foreground (IN-9 dog, bird, reptile, fish as the dataset's Quadruped, Bird, Reptile, Fish).")] = None,
    stylized: Annotated[Optional[Path], typer.Option(rich_help_panel=SHIFTS, help="Stylized-ImageNet folder (<wnid>/<stem>.JPEG, optionally under train/ or val/): adds a stylized-imagenet row to --suite shape-texture for the split's samples with the same file stem.")] = None,
    batch_size: Annotated[int, typer.Option(rich_help_panel=RUNTIME, help="Images per forward pass.")] = 256,
    device: Annotated[Device, typer.Option(rich_help_panel=RUNTIME, help="auto (CUDA when available), cpu or cuda.")] = Device.AUTO,
) -> None:
    """Non-adversarial robustness (paper §5.1): corruptions, foreground/background, shape vs texture."""
    from partcli.progress import info
    from partcli.robustness.corruptions import CORRUPTIONS, SEVERITIES
    from partcli.robustness.suite import robustness_tables, run_robustness
    from partcli.runtime import pick_device
    from partcli.shards import join_ranks
    from partcli.train.distributed import leave_distributed

    try:  # under torchrun the ranks share the sets; rank 0 alone writes and prints
        shard = join_ranks(device.value)
        with shard.together():
            picked = str(pick_device(device.value, shard.local_rank))
        result = run_robustness(ckpt, data, suite=suite.value, split=split.value, out=out,
                                corruptions=corruption or CORRUPTIONS, severities=severity or SEVERITIES, seed=seed,
                                batch_size=batch_size, device=picked, cache=cache, stylizer=stylizer,
                                imagenet9=imagenet9, stylized=stylized, model=model, image_size=image_size,
                                shard=shard)
    finally:
        leave_distributed()
    if not shard.is_main:
        return
    if json_output:
        _emit_json(result.rows, out, "robustness")
    for table in robustness_tables(result, f"{ckpt or model} on {data} [{split.value}]"):
        show(table, json_output)
    for note in result.notes:
        info(note)
    say(f"appended to {out}")


@app.command()
def compare(
    csv: Annotated[list[Path], typer.Argument(help="Results CSV(s) of evaluate, attack or robustness.")],
    by: Annotated[str, typer.Option(rich_help_panel=SUMMARY, help="Checkpoint property to group by (arch, adv, seg-labels, seg-frac, backbone, ...) or a CSV column.")] = "arch",
    metric: Annotated[str, typer.Option(rich_help_panel=SUMMARY, help="acc (the row's accuracy under its attack or shift; clean for evaluate rows) or a CSV column, e.g. clean_acc, shape_bias, bg_gap.")] = "acc",
    attack: Annotated[Optional[list[str]], typer.Option(rich_help_panel=SUMMARY, help="Keep rows whose attack matches this glob, repeatable (e.g. mean, 'mixed-*').")] = None,
    ref: Annotated[Optional[str], typer.Option(rich_help_panel=SUMMARY, help="Group the p-values compare against.", show_default="the first in the CSV")] = None,
    out: Annotated[Optional[Path], typer.Option(rich_help_panel=RUN, help="Also write the summary as CSV (replaced if it exists).")] = None,
    json_output: Annotated[bool, typer.Option("--json", rich_help_panel=RUN, help="Print the summary as JSON lines on stdout (one object "
                                              "per row, the summary CSV's columns) instead of the table.")] = False,
) -> None:
    """Mean ± 95 % CI over seeds per group and Welch's t-test p-values, as in the paper's Tables 2-4."""
    from partcli.evaluate.compare import check_summary_out, compare_results, compare_table, write_summary
    from partcli.progress import info

    if out is not None:
        check_summary_out(out)
    result = compare_results(csv, by, metric, attack, ref)
    if out is not None:  # written before anything is printed: a failed write is the command's only output
        write_summary(result.summary, out)
    if json_output:
        records = result.summary.astype(object).where(result.summary.notna(), None).to_dict("records")
        print("\n".join(json.dumps(r, sort_keys=True, default=str) for r in records), flush=True)
    else:
        show(compare_table(result, metric))
    for note in result.notes:
        info(note)
    if out is not None:
        say(f"wrote {out}")


# ---------------------------------------------------------------------------------------------- pictures, reports
@app.command()
def visualize(
    data: Annotated[Path, typer.Option(rich_help_panel=DATA, help="Prepared dataset the model was trained for.")],
    ckpt: Ckpt = None,
    model: AnyModel = None,
    image_size: ModelSize = None,
    out: Annotated[Optional[Path], typer.Option(rich_help_panel=RUN, help="Figure file to write; its extension (.png, .pdf, .svg) is the format.", show_default="fig/masks.<format>")] = None,
    fmt: Annotated[Optional[FigureFormat], typer.Option("--format", rich_help_panel=RUN, help="File format when --out is not given (png: 200 dpi).", show_default="png, or --out's extension")] = None,
    split: Annotated[Split, typer.Option(rich_help_panel=DATA, help="Split to draw from.")] = Split.TEST,
    n: Annotated[int, typer.Option("--n", "--n-samples", rich_help_panel=DATA, help="Samples (rows), drawn with --seed and kept in split "
                                   "order (--n-samples: the same, the spelling torchrun passes on).")] = 8,
    seed: Seed = 0,
    attack: Annotated[Optional[VisualAttack], typer.Option(rich_help_panel=ADVERSARY, help="Also attack each sample: pgd (partcli's PGD) or autoattack (the real AutoAttack, App. B settings).")] = None,
    eps: Annotated[str, typer.Option(rich_help_panel=ADVERSARY, help="ℓ∞ radius of --attack on [0, 1] pixels: a number or a fraction.")] = "8/255",
    steps: Annotated[int, typer.Option(rich_help_panel=ADVERSARY, help="PGD steps of --attack pgd.")] = 20,
    step_size: Annotated[str, typer.Option(rich_help_panel=ADVERSARY, help="PGD step size of --attack pgd: a number or fraction.")] = "2/255",
    batch_size: Annotated[int, typer.Option(rich_help_panel=RUNTIME, help="Samples per forward pass and attack batch.")] = 32,
    device: Annotated[Device, typer.Option(rich_help_panel=RUNTIME, help="auto (CUDA when available), cpu or cuda.")] = Device.AUTO,
) -> None:
    """Draw images with their true and predicted part masks (and under --attack), part colours fixed per id."""
    from partcli.progress import info
    from partcli.report.visualize import visualize as draw

    from partcli.runtime import pick_device

    result = draw(ckpt, data, out, split=split.value, n=n, seed=seed, attack=None if attack is None else attack.value, eps=eps, steps=steps,
                  step_size=step_size, device=str(pick_device(device.value)), batch_size=batch_size, model=model,
                  image_size=image_size, fmt=None if fmt is None else fmt.value)
    for note in result.notes:
        info(note)
    adv = "" if result.adv_correct is None else f", {result.adv_correct} under --attack {attack}"
    say(f"wrote {result.out}: {result.n} samples, {result.clean_correct} classified correctly{adv}")


@app.command()
def report(
    paths: Annotated[list[Path], typer.Argument(help="Run folders, results CSVs (attack, evaluate, robustness), or folders holding them (searched recursively).")],
    out: Annotated[Path, typer.Option(rich_help_panel=RUN, help="Folder to write index.md and its PNGs into; a previous report there is replaced.")] = Path("report"),
    split: Annotated[Split, typer.Option(rich_help_panel=DATA, help="Split of the results that Table 1, the trade-off, the ε sweep and the robustness tables show.")] = Split.TEST,
    eps: Annotated[str, typer.Option(rich_help_panel=ADVERSARY, help="ℓ∞ radius of Table 1 and the trade-off plot: a number or a fraction.")] = "8/255",
    overwrite: Annotated[bool, typer.Option("--overwrite", rich_help_panel=RUN, help="Write into a non-empty --out that holds no partcli report.")] = False,
    fmt: Annotated[FigureFormat, typer.Option("--format", rich_help_panel=RUN, help="File format of the figures index.md links (png: 200 dpi); index.html embeds PNGs whatever it is.")] = FigureFormat.PNG,
) -> None:
    """One page of tables and plots: Table 1 (mean ± CI over seeds), trade-off, ε sweep, robustness, hygiene, curves."""
    from partcli.report.report import build_report

    result = build_report(paths, out, split=split.value, eps=eps, overwrite=overwrite, fmt=fmt.value)
    figures = sum(len(s.figures) for s in result.sections)
    tables = sorted({name for s in result.sections for name in s.files})
    say(f"wrote {result.out / 'index.md'}, index.html, {figures} {fmt.value.upper()} figure(s)"
        + "".join(f", {name}" for name in tables) + f"; {len(result.skipped)} thing(s) skipped (listed in the report)")


def main() -> None:
    """Console-script entry point: one-line errors (exit code 2) for user mistakes, never a traceback."""
    on_interrupt(None)
    _verbose["on"] = False
    try:
        code = app(args=_global_first(sys.argv[1:]), standalone_mode=False)
    except PartcliError as exc:
        if _verbose["on"]:
            traceback.print_exc()
        _fail(str(exc))
    except UsageError as exc:  # Typer's own parsing: a value of the wrong type, a missing or unknown option
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(2)  # the help text has been printed
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _fail(exc.format_message() + where)
    except PermissionError as exc:  # e.g. Path.is_dir() on a path inside a folder this account may not enter
        where = exc.filename or "a file"
        _fail(f"{where}: permission denied; check that this account may read (and for outputs, write) it")
    except KeyboardInterrupt:
        code = 130
    if code == 130:  # Ctrl-C (Typer returns 130 for it without a word)
        note = interrupt_note()
        error("interrupted" + (f"; {note}" if note else ""))
    sys.exit(code if isinstance(code, int) else 0)


GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose")  # options of ``partcli`` itself that may follow the command
_verbose = {"on": False}


def _global_first(args: list[str]) -> list[str]:
    """``-q``/``-v`` are options of ``partcli`` itself; written after the command (``partcli train ... -q``) they
    are moved before it."""
    return [*(a for a in args if a in GLOBAL_FLAGS), *(a for a in args if a not in GLOBAL_FLAGS)]


def _fail(message: str) -> None:
    error(message)
    sys.exit(2)
