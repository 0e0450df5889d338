"""The ``partcli`` command line: parses options and calls the Python API; nothing else lives here."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from partcli.errors import PartcliError
from partcli.progress import console, set_quiet

# click's UsageError, the base of Typer's parsing errors; Typer ≥ 0.22 vendors click and exports only BadParameter
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")

app = typer.Typer(help="Train and honestly evaluate adversarially robust part-based image classifiers.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
prepare_app = typer.Typer(help="Turn a dataset into the prepared-dataset format (DESIGN §2).", no_args_is_help=True)
app.add_typer(prepare_app, name="prepare")

Out = Annotated[Path, typer.Option("--out", help="Output folder (must not exist or be empty).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty --out.")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for every random choice; same seed, same result.")]
Src = Annotated[Path, typer.Option("--src", help="Folder holding the official download.")]
Strict = Annotated[bool, typer.Option("--strict", help="Stop at the first undecodable image instead of skipping it.")]


@app.callback()
def _main(quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or info lines.")] = False) -> None:
    set_quiet(quiet)


# ---------------------------------------------------------------------------------------------- prepare
@prepare_app.command("synthetic")
def prepare_synthetic_cmd(
    out: Out,
    n: Annotated[int, typer.Option(help="Number of images.")] = 3000,
    image_size: Annotated[int, typer.Option(help="Side of the square images in pixels.")] = 64,
    seed: Seed = 0,
    overwrite: Overwrite = False,
) -> None:
    """A procedural dataset of objects made of class-specific parts; needs no download."""
    from partcli.data.synthetic import prepare_synthetic

    _report_dataset(prepare_synthetic(out, n=n, image_size=image_size, seed=seed, overwrite=overwrite), out)


@prepare_app.command("part-imagenet")
def prepare_part_imagenet_cmd(src: Src, out: Out, seed: Seed = 0, strict: Strict = False,
                              overwrite: Overwrite = False) -> None:
    """Part-ImageNet (JPEGImages/ + COCO train/val/test.json), re-split i.i.d. 80/10/10 per class."""
    from partcli.data.prepare_part_imagenet import prepare_part_imagenet

    _report_dataset(prepare_part_imagenet(src, out, seed=seed, overwrite=overwrite, strict=strict), out)


@prepare_app.command("cityscapes")
def prepare_cityscapes_cmd(
    src: Src, out: Out,
    min_area: Annotated[int, typer.Option(help="Skip instances with fewer pixels.")] = 1000,
    pad: Annotated[float, typer.Option(help="Maximum extra random padding of a crop, as a fraction of its side.")] = 0.1,
    seed: Seed = 0,
    workers: Annotated[Optional[int], typer.Option(help="Processes (default: all cores).")] = None,
    strict: Strict = False, overwrite: Overwrite = False,
) -> None:
    """Cityscapes + Cityscapes-Panoptic-Parts: human vs vehicle crops with 9 parts."""
    from partcli.data.prepare_cityscapes import prepare_cityscapes

    info = prepare_cityscapes(src, out, min_area=min_area, pad=pad, seed=seed, workers=workers,
                              overwrite=overwrite, strict=strict)
    _report_dataset(info, out)


@prepare_app.command("pascal-part")
def prepare_pascal_part_cmd(src: Src, out: Out, seed: Seed = 0, strict: Strict = False,
                            overwrite: Overwrite = False) -> None:
    """PASCAL VOC 2010 + PASCAL-Part: five classes, 3 merged parts each, labelled by the largest object."""
    from partcli.data.prepare_pascal_part import prepare_pascal_part

    _report_dataset(prepare_pascal_part(src, out, seed=seed, overwrite=overwrite, strict=strict), out)


def _report_dataset(info, out: Path) -> None:
    total = sum(sum(c.values()) for c in info.counts.values())
    console.print(f"wrote {out}: {total} samples, {info.num_classes} classes, {info.num_parts} parts", highlight=False)


# ---------------------------------------------------------------------------------------------- training
Data = Annotated[Optional[Path], typer.Option("--data", help="Prepared dataset folder.")]
RunOut = Annotated[Optional[Path], typer.Option("--out", help="Run folder to write.")]
Config = Annotated[Optional[Path], typer.Option("--config", help="YAML file of options; options given here win.")]
Arch = Annotated[Optional[str], typer.Option(help="resnet | downsampled | bbox | twohead | pixel  [default: bbox]")]
Backbone = Annotated[Optional[str], typer.Option(help="torchvision model (resnet) or smp encoder (part models)  [default: resnet18]")]
Pretrained = Annotated[Optional[Path], typer.Option(help="Local state-dict file with backbone weights (never downloaded).")]
Pool = Annotated[Optional[int], typer.Option(help="Downsampled/two-headed head: pooled size (App. D.8)  [default: 4]")]
DropBg = Annotated[Optional[bool], typer.Option("--drop-background/--keep-background", help="Downsampled head: drop the background channel (App. D.7).")]
ConcatIn = Annotated[Optional[bool], typer.Option("--concat-input/--no-concat-input", help="Downsampled head: also feed the image (App. D.10).")]
Epochs = Annotated[Optional[int], typer.Option(help="[default: 50]")]
BatchSize = Annotated[Optional[int], typer.Option(help="[default: 128]")]
Lr = Annotated[Optional[float], typer.Option(help="SGD learning rate, cosine-annealed  [default: 0.1]")]
Wd = Annotated[Optional[float], typer.Option(help="Weight decay  [default: 5e-4]")]
ImageSize = Annotated[Optional[int], typer.Option(help="Training/eval resolution, a multiple of 16  [default: 224]")]
CropScale = Annotated[Optional[float], typer.Option(help="Smallest RandomResizedCrop area, as a fraction of the image  [default: 0.08]")]
Workers = Annotated[Optional[int], typer.Option(help="DataLoader worker processes  [default: 0]")]
SeedOpt = Annotated[Optional[int], typer.Option(help="[default: 0]")]
Device = Annotated[Optional[str], typer.Option(help="auto | cpu | cuda  [default: auto]")]
Amp = Annotated[Optional[str], typer.Option(help="Mixed precision on CUDA: off | bf16 | fp16  [default: off]")]
ChannelsLast = Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="channels_last memory format.")]
Cseg = Annotated[Optional[float], typer.Option(help="Segmentation-loss weight c_seg (Eqs. 5, 8, 10)  [default: 0.5]")]
SegLabels = Annotated[Optional[str], typer.Option(help="part | object (parts merged per class, App. D.5) | box (tight part boxes, App. D.4) | centroid (Eqs. 12–13, App. D.4)  [default: part]")]
Momentum = Annotated[Optional[float], typer.Option(help="SGD momentum  (default 0.9)")]
Optim = Annotated[Optional[str], typer.Option(help="sgd (momentum 0.9, the paper's recipe) | adamw (much faster for a segmenter trained from scratch)  (default sgd)")]
WarmupEpochs = Annotated[Optional[int], typer.Option(help="Epochs of linear learning-rate warm-up before the cosine schedule  (default 0)")]
DecayNormBias = Annotated[Optional[bool], typer.Option("--decay-norm-bias/--no-decay-norm-bias", help="Also apply weight decay to BatchNorm parameters and biases (the paper's code exempts them)  (default no)")]
SegOnlyEpochs = Annotated[Optional[int], typer.Option(help="First epochs train the segmenter alone (segmentation loss only, clean inputs), then the whole model  (default 0)")]
SegLossNorm = Annotated[Optional[str], typer.Option(help="batch (the paper's code: samples without a mask count as zero, so --seg-frac f weighs the term by about f) | labelled (mean over masked samples only)  (default batch)")]
SegFrac = Annotated[Optional[float], typer.Option(help="Fraction of training samples keeping their part mask (§5.3)  [default: 1]")]


def _training_overrides(**options) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}


def _run(config: Optional[Path], resume: bool, overwrite: bool, **options) -> None:
    from partcli.config import resolve_config
    from partcli.train.config import TrainConfig
    from partcli.train.loop import run_training

    cfg = resolve_config(TrainConfig, config, _training_overrides(**options))
    if not cfg.out:
        raise PartcliError("--out is required: the run folder to write (or to continue with --resume)")
    if not resume and not cfg.data:
        raise PartcliError("--data is required: a prepared dataset folder")
    out = run_training(cfg, resume=resume, overwrite=overwrite)
    console.print(f"run written to {out}", highlight=False)


@app.command()
def pretrain(
    data: Data = None, out: RunOut = None, config: Config = None, arch: Arch = None, backbone: Backbone = None,
    pretrained: Pretrained = None, pool: Pool = None, drop_background: DropBg = None, concat_input: ConcatIn = None,
    epochs: Epochs = None, batch_size: BatchSize = None, lr: Lr = None, wd: Wd = None, image_size: ImageSize = None,
    crop_scale: CropScale = None, workers: Workers = None, seed: SeedOpt = None, device: Device = None, amp: Amp = None,
    channels_last: ChannelsLast = None, cseg: Cseg = None, seg_frac: SegFrac = None, seg_labels: SegLabels = None,
    optim: Optim = None, momentum: Momentum = None, warmup_epochs: WarmupEpochs = None, decay_norm_bias: DecayNormBias = None,
    seg_only_epochs: SegOnlyEpochs = None, seg_loss_norm: SegLossNorm = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue --out from checkpoints/last.pt.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """Clean training (paper Eq. 5): class labels plus part masks, best checkpoint by validation accuracy."""
    _run(config, resume, overwrite, data=data, out=out, arch=arch, backbone=backbone, pretrained=pretrained,
         pool=pool, drop_background=drop_background, concat_input=concat_input, epochs=epochs,
         batch_size=batch_size, lr=lr, wd=wd, image_size=image_size, crop_scale=crop_scale, workers=workers, seed=seed, device=device,
         amp=amp, channels_last=channels_last, cseg=cseg, seg_frac=seg_frac, seg_labels=seg_labels, optim=optim,
         momentum=momentum, warmup_epochs=warmup_epochs, decay_norm_bias=decay_norm_bias, seg_only_epochs=seg_only_epochs,
         seg_loss_norm=seg_loss_norm, adv="none")


@app.command()
def train(
    data: Data = None, out: RunOut = None, config: Config = None, arch: Arch = None, backbone: Backbone = None,
    pretrained: Pretrained = None, pool: Pool = None, drop_background: DropBg = None, concat_input: ConcatIn = None,
    epochs: Epochs = None, batch_size: BatchSize = None, lr: Lr = None, wd: Wd = None, image_size: ImageSize = None,
    crop_scale: CropScale = None, workers: Workers = None, seed: SeedOpt = None, device: Device = None, amp: Amp = None,
    channels_last: ChannelsLast = None, cseg: Cseg = None, seg_frac: SegFrac = None,
    optim: Optim = None, momentum: Momentum = None, warmup_epochs: WarmupEpochs = None, decay_norm_bias: DecayNormBias = None,
    seg_only_epochs: SegOnlyEpochs = None, seg_loss_norm: SegLossNorm = None,
    adv: Annotated[Optional[str], typer.Option(help="none | pgd | trades  [default: none]")] = None,
    eps: Annotated[Optional[str], typer.Option(help="ℓ∞ budget, a number or fraction  [default: 8/255]")] = None,
    step_size: Annotated[Optional[str], typer.Option(help="PGD step size  [default: 2/255]")] = None,
    steps: Annotated[Optional[int], typer.Option(help="PGD steps while training  [default: 10]")] = None,
    val_steps: Annotated[Optional[int], typer.Option(help="PGD steps for validation  [default: --steps]")] = None,
    beta: Annotated[Optional[float], typer.Option(help="TRADES β (Eq. 10)  [default: 0.5]")] = None,
    init: Annotated[Optional[Path], typer.Option(help="Start from this checkpoint's weights (e.g. a pretrain run's best.pt).")] = None,
    seg_labels: SegLabels = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue --out from checkpoints/last.pt.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """Adversarial training: PGD (Eqs. 8–9) or TRADES (Eqs. 10–11); best checkpoint by PGD validation accuracy."""
    from partcli.config import parse_fraction

    _run(config, resume, overwrite, data=data, out=out, arch=arch, backbone=backbone, pretrained=pretrained,
         pool=pool, drop_background=drop_background, concat_input=concat_input, epochs=epochs,
         batch_size=batch_size, lr=lr, wd=wd, image_size=image_size, crop_scale=crop_scale, workers=workers, seed=seed, device=device,
         amp=amp, channels_last=channels_last, cseg=cseg, seg_frac=seg_frac, adv=adv,
         eps=None if eps is None else parse_fraction(eps, "--eps"),
         step_size=None if step_size is None else parse_fraction(step_size, "--step-size"),
         steps=steps, val_steps=val_steps, beta=beta, init=init, seg_labels=seg_labels, optim=optim,
         momentum=momentum, warmup_epochs=warmup_epochs, decay_norm_bias=decay_norm_bias, seg_only_epochs=seg_only_epochs,
         seg_loss_norm=seg_loss_norm)


@app.command()
def pseudolabel(
    data: Annotated[Path, typer.Option(help="Prepared dataset whose training masks are (partly) kept.")],
    out: Annotated[Path, typer.Option(help="New prepared dataset to write (must not exist or be empty); the segmenter trains in <out>.segmenter/ and ends up in <out>/segmenter/.")],
    frac: Annotated[float, typer.Option(help="Fraction of training samples keeping their ground-truth mask, stratified per class (the same choice as `train --seg-frac` with the same --seed).")] = 0.1,
    unlabelled: Annotated[Optional[Path], typer.Option(help="Extra images with a class label and no mask: a folder with labels.csv (image,label = path relative to it, class name); they get pseudo masks too.")] = None,
    backbone: Annotated[str, typer.Option(help="smp encoder of the segmenter.")] = "resnet50",
    pretrained: Pretrained = None,
    epochs: Annotated[int, typer.Option(help="Segmenter training epochs.")] = 50,
    batch_size: Annotated[int, typer.Option(help="Segmenter training and prediction batch size.")] = 128,
    lr: Annotated[float, typer.Option(help="SGD learning rate of the segmenter, cosine-annealed.")] = 0.1,
    image_size: Annotated[int, typer.Option(help="Segmenter resolution, a multiple of 16; masks are predicted back at each image's own size.")] = 224,
    seed: Annotated[int, typer.Option(help="Seed of the kept fraction and of the segmenter's training.")] = 0,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    workers: Annotated[int, typer.Option(help="DataLoader worker processes.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """Pseudo-labelling (§5.3, App. D.6): train a segmenter on --frac of the part masks, predict the rest."""
    from partcli.pseudolabel import PseudoLabelConfig, pseudolabel as run_pseudolabel

    cfg = PseudoLabelConfig(data=str(data), out=str(out), frac=frac,
                            unlabelled=None if unlabelled is None else str(unlabelled), backbone=backbone,
                            pretrained=None if pretrained is None else str(pretrained), epochs=epochs,
                            batch_size=batch_size, lr=lr, image_size=image_size, seed=seed, device=device,
                            workers=workers)
    result = run_pseudolabel(cfg, overwrite=overwrite)
    console.print(f"segmenter on val: pixel acc {_pct(result.val_pixel_acc)}, mIoU {_pct(result.val_miou)}",
                  highlight=False)
    console.print(f"wrote {result.out}: {result.n_gt} gt + {result.n_pseudo} pseudo training masks; "
                  f"segmenter {result.segmenter_checkpoint}", highlight=False)


# ---------------------------------------------------------------------------------------------- evaluation
@app.command()
def evaluate(
    ckpt: Annotated[Path, typer.Option(help="A partcli checkpoint (.pt).")],
    data: Annotated[Path, typer.Option(help="Prepared dataset folder.")],
    split: Annotated[str, typer.Option(help="train | val | test")] = "test",
    out: Annotated[Path, typer.Option(help="CSV to append the result row to.")] = Path("results/evaluate.csv"),
    batch_size: Annotated[int, typer.Option()] = 64,
    image_size: Annotated[Optional[int], typer.Option(help="[default: the checkpoint's training size]")] = None,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    workers: Annotated[int, typer.Option()] = 0,
) -> None:
    """Clean accuracy and part-mask pixel accuracy / mIoU on a split; appends a row to a CSV."""
    from partcli.evaluate.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(ckpt, data, split, out, batch_size, device, image_size, workers)
    table = Table(title=escape(f"{ckpt} on {data} [{split}]"))
    for column in ("n", "clean acc", "pixel acc", "foreground pixel acc", "mIoU", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(str(result.n), _pct(result.clean_acc), _pct(result.pixel_acc), _pct(result.fg_pixel_acc),
                  _pct(result.miou), f"{result.seconds:.1f}")
    console.print(table)
    console.print(f"appended to {out}", highlight=False)


@app.command()
def attack(
    ckpt: Annotated[Path, typer.Option(help="Checkpoint to attack (a partcli .pt file).")],
    data: Annotated[Path, typer.Option(help="Prepared dataset the checkpoint was trained for.")],
    split: Annotated[str, typer.Option(help="Split to attack: train, val or test.")] = "test",
    suite: Annotated[str, typer.Option(help="autoattack, pgd, seg-single, seg-two-stage, segmenter, eps-sweep or all.")] = "autoattack",
    eps: Annotated[str, typer.Option(help="ℓ∞ radius on [0, 1] pixels: a number or a fraction such as 8/255.")] = "8/255",
    n: Annotated[Optional[int], typer.Option(help="Attack this many samples, drawn with --seed and kept in split order (default: the whole split).")] = None,
    batch_size: Annotated[int, typer.Option(help="Samples per attack batch.")] = 256,
    out: Annotated[Path, typer.Option(help="Metrics CSV to append to; per-sample outcomes go beside it as <stem>.<suite>.<k>.samples.csv.")] = Path("results/attacks.csv"),
    seed: Seed = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    attack_cseg: Annotated[float, typer.Option(help="Weight of the segmentation loss in the seg-single attack (Table 11).")] = 0.5,
    restarts: Annotated[int, typer.Option(help="PGD random restarts; the worst case per sample is kept (App. B).")] = 5,
    steps: Annotated[int, typer.Option(help="PGD steps (App. B).")] = 100,
    step_size: Annotated[str, typer.Option(help="PGD step size (App. B): a number or fraction.")] = "0.001",
    strategy: Annotated[Optional[list[str]], typer.Option(help="Two-stage stage-1 strategy, repeatable: untargeted, random, mc-random, mc-sorted  [default: all four]")] = None,
    sweep_attack: Annotated[str, typer.Option(help="Attack of --suite eps-sweep (Table 10): autoattack or pgd.")] = "autoattack",
    survivors_of: Annotated[Optional[Path], typer.Option(help="Attack only the samples robust in this earlier *.samples.csv (same checkpoint and split); rows report over its samples, named '<attack> after <file>'.")] = None,
    no_hygiene: Annotated[bool, typer.Option("--no-hygiene", help="Skip the evaluation-hygiene checks and their extra PGD runs.")] = False,
) -> None:
    """Measure robustness: AutoAttack, PGD, segmenter-guided attacks, ε sweep; prints a hygiene checklist."""
    from partcli.attacks.seg_attacks import STRATEGIES
    from partcli.attacks.suite import eps_label, run_attack_suite
    from partcli.evaluate.hygiene import format_checklist
    from partcli.progress import info

    result = run_attack_suite(ckpt, data, split=split, suite=suite, eps=eps, n=n, batch_size=batch_size, out=out,
                              seed=seed, device=device, attack_cseg=attack_cseg, restarts=restarts, steps=steps,
                              step_size=step_size, strategies=strategy or STRATEGIES, sweep_attack=sweep_attack,
                              survivors_of=survivors_of,
                              hygiene=not no_hygiene)
    table = Table(title=escape(f"{ckpt} on {data} [{split}], suite {suite}"))
    columns = ("attack", "eps", "n", "clean acc", "adv acc", "clean pixel acc", "adv pixel acc", "seconds")
    for column in columns:
        table.add_column(column, justify="left" if column == "attack" else "right")
    for row in result.rows:
        table.add_row(str(row["attack"]), eps_label(row["eps"]), str(row["n"]), _pct(row.get("clean_acc")),
                      _pct(row.get("adv_acc")), _pct(row.get("clean_pixel_acc")), _pct(row.get("adv_pixel_acc")),
                      f"{row.get('seconds') or 0.0:.1f}")
    console.print(table)
    for note in result.notes:
        info(note)
    if result.checks:
        console.print(format_checklist(result.checks))
    console.print(f"appended to {out}; per-sample outcomes in {result.samples_path}", highlight=False)


@app.command("info")
def info_cmd(path: Annotated[Path, typer.Argument(help="A checkpoint file or a prepared dataset folder.")]) -> None:
    """Print a checkpoint's or a prepared dataset's summary."""
    from partcli.summary import describe

    console.print(describe(path))


def _pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


# ---------------------------------------------------------------------------------------------- robustness
@app.command()
def robustness(
    ckpt: Annotated[Path, typer.Option(help="A partcli checkpoint (.pt).")],
    data: Annotated[Path, typer.Option(help="Prepared dataset the checkpoint was trained for (its masks make the foreground and shape-texture sets).")],
    suite: Annotated[str, typer.Option(help="corruptions, foreground, shape-texture or all.")] = "all",
    split: Annotated[str, typer.Option(help="train | val | test")] = "test",
    out: Annotated[Path, typer.Option(help="Results CSV to append to (attack's columns + severity, shape_bias, bg_gap, seed).")] = Path("results/robustness.csv"),
    corruption: Annotated[Optional[list[str]], typer.Option(help="Corruption type, repeatable  (default: the 15 ImageNet-C types)")] = None,
    severity: Annotated[Optional[list[int]], typer.Option(help="Corruption severity 1-5, repeatable  (default: 1 to 5)")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the corruptions and of the background and texture pairings.")] = 0,
    cache: Annotated[Optional[Path], typer.Option(help="Folder of the cached corrupted images  (default: DATA/.cache/corruptions)")] = None,
    stylizer: Annotated[Optional[Path], typer.Option(help="A torch.export program (content, style) -> stylized image, each 1x3xSxS in [0, 1]: adds a 'stylized' shape-texture set.")] = None,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 256,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
) -> None:
    """Non-adversarial robustness (paper §5.1): corruptions, foreground/background, shape vs texture."""
    from partcli.progress import info
    from partcli.robustness.corruptions import CORRUPTIONS, SEVERITIES
    from partcli.robustness.suite import robustness_tables, run_robustness

    result = run_robustness(ckpt, data, suite=suite, split=split, out=out, corruptions=corruption or CORRUPTIONS,
                            severities=severity or SEVERITIES, seed=seed, batch_size=batch_size, device=device,
                            cache=cache, stylizer=stylizer)
    for table in robustness_tables(result, f"{ckpt} on {data} [{split}]"):
        console.print(table)
    for note in result.notes:
        info(note)
    console.print(f"appended to {out}", highlight=False)


@app.command()
def compare(
    csv: Annotated[list[Path], typer.Argument(help="Results CSV(s) of evaluate, attack or robustness.")],
    by: Annotated[str, typer.Option(help="Checkpoint property to group by (arch, adv, seg-labels, seg-frac, backbone, ...) or a CSV column.")] = "arch",
    metric: Annotated[str, typer.Option(help="acc (the row's accuracy under its attack or shift; clean for evaluate rows) or a CSV column, e.g. clean_acc, shape_bias, bg_gap.")] = "acc",
    attack: Annotated[Optional[list[str]], typer.Option(help="Keep rows whose attack matches this glob, repeatable (e.g. mean, 'mixed-*').")] = None,
    ref: Annotated[Optional[str], typer.Option(help="Group the p-values compare against  (default: the first in the CSV)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Also write the summary as CSV (replaced if it exists).")] = None,
) -> None:
    """Mean ± 95 % CI over seeds per group and Welch's t-test p-values, as in the paper's Tables 2-4."""
    from partcli.evaluate.compare import compare_results, compare_table, write_summary
    from partcli.progress import info

    result = compare_results(csv, by, metric, attack, ref)
    console.print(compare_table(result, metric))
    for note in result.notes:
        info(note)
    if out is not None:
        write_summary(result.summary, out)
        console.print(f"wrote {out}", highlight=False)


def main() -> None:
    """Console-script entry point: one-line errors (exit code 2) for user mistakes, never a traceback."""
    try:
        code = app(standalone_mode=False)
    except PartcliError as exc:
        _fail(str(exc))
    except UsageError as exc:  # Typer's own parsing: a value of the wrong type, a missing or unknown option
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(2)  # the help text has been printed
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        _fail(exc.format_message() + where)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    sys.exit(2)
