"""The training configuration shared by ``pretrain`` and ``train`` (one typed dataclass).

Each field is an option's one definition (``partcli.options.option``): its name, type, default, help text, help
panel and choices. To add an option, add a field here; ``pretrain``/``train`` grow the option, ``--config`` files
accept the key and every run's ``config.yaml`` records it. Options of the ``Adversary`` panel and ``init`` are
``train``'s only (``pretrain`` trains clean, from scratch or ``--pretrained`` backbone weights).
"""
from __future__ import annotations

from dataclasses import dataclass

from partcli.attacks.config import Norm
from partcli.config import parse_pretrained, parse_workers
from partcli.data import label_kinds
from partcli.errors import PartcliError
from partcli.options import (ADVERSARY, DATA, MODEL, OPTIMISATION, RUN, RUNTIME, Choice, device_option, option,
                             parse_fraction, seed_option)
from partcli.tracking import Logger, parse_loggers


class Arch(Choice):
    RESNET = "resnet"
    DOWNSAMPLED = "downsampled"
    BBOX = "bbox"
    TWOHEAD = "twohead"
    PIXEL = "pixel"


class Adv(Choice):
    NONE = "none"
    PGD = "pgd"
    TRADES = "trades"


class Amp(Choice):
    OFF = "off"
    BF16 = "bf16"
    FP16 = "fp16"


def label_kind_choices() -> type[Choice]:
    """``--seg-labels``: the label kinds registered now (``partcli.data.label_kinds``)."""
    return Choice("SegLabels", {name: name for name in label_kinds.LABEL_KINDS})  # type: ignore[return-value]


class Optim(Choice):
    SGD = "sgd"
    ADAMW = "adamw"


class SegLossNorm(Choice):
    BATCH = "batch"
    LABELLED = "labelled"


class BBoxScore(Choice):
    LOGIT = "logit"
    PROB = "prob"


class TradesBN(Choice):
    TWO_PASS = "two-pass"
    CONCAT = "concat"


class WdExempt(Choice):
    ONE_D = "1d"
    NAMES = "names"


class BestRule(Choice):
    MAX_ADV = "max-adv"
    CLEAN_GE_ADV = "clean-ge-adv"


class LrSchedule(Choice):
    STEP = "step"
    EPOCH = "epoch"


TRAIN_ONLY = ("init",)  # with the Adversary panel: options of `train`, not of `pretrain`
# Options that a resumed run takes from the command line; any other must equal the stored configuration.
RESUMABLE = ("out", "data", "epochs", "workers", "device", "log_interval", "logger")


def parse_replanned(value: object, option: str) -> list[list[int]]:
    """``replanned``: a list of [epoch reached, earlier --epochs] pairs of positive integers."""
    ok = isinstance(value, list) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, int) and v > 0 for v in p) for p in value)
    if not ok:
        raise PartcliError(f"{option}: expected a list of [epoch reached, earlier --epochs] pairs, got {value!r}")
    return [list(p) for p in value]


@dataclass
class TrainConfig:
    data: str = option("", "Prepared dataset folder (with --resume: only to point at a dataset that moved).",
                       panel=DATA, path=True)
    out: str = option("", "Run folder to write, or to continue with --resume.", panel=RUN, path=True)
    arch: str = option("bbox", "Model: the resnet baseline or a part model with this head (paper §3.2, App. C).",
                       panel=MODEL, choices=Arch)
    backbone: str = option("resnet18", "torchvision model (resnet) or smp encoder (part models).", panel=MODEL)
    pretrained: str | None = option(None, "Backbone weights: none (random), imagenet (torchvision's ImageNet weights, "
                                    "the paper's segmenter encoder; smp's for other encoders), timm or "
                                    "timm:<model>.<tag> (timm's; timm:resnet50.ram_in1k is the paper's ResNet-50 "
                                    "baseline), or a local state-dict file. Fetched into the libraries' caches "
                                    "($TORCH_HOME, the Hugging Face cache) when not there.", panel=MODEL,
                                    parse=parse_pretrained, shown="none")
    init: str | None = option(None, "Start from this checkpoint's weights (e.g. a pretrain run's best.pt).",
                              panel=MODEL, path=True)
    bbox_score: str = option("logit", "Bounding-box head's part score s_i (Eq. 1): logit (the foreground-weighted mean "
                             "of the raw part logit, as Eq. 1 and the paper's code; a model trained by that code "
                             "runs unchanged) or prob (of the softmax probability, partcli 0.1).", panel=MODEL,
                             choices=BBoxScore)
    output_stride: int = option(16, "Part models: the segmenter encoder's output stride, 16 (DeepLabv3+'s and the "
                                "paper's) or 8 (its last two stages dilated: finer part masks on small images; "
                                "the demo's clean stage took 1.65× as long).", panel=MODEL)
    pool: int = option(4, "Downsampled/two-headed head: pooled size (App. D.8).", panel=MODEL, low=1)
    drop_background: bool = option(False, "Downsampled head: drop the background channel (App. D.7).", panel=MODEL,
                                   flags="--drop-background/--keep-background")
    concat_input: bool = option(False, "Downsampled head: also feed the image (App. D.10).", panel=MODEL,
                                flags="--concat-input/--no-concat-input")
    epochs: int = option(50, "Training epochs; with --resume, a new total that extends the run (the cosine "
                         "schedule is re-planned from the epoch reached).", panel=OPTIMISATION, low=1)
    batch_size: int = option(128, "Samples per step (per rank under torchrun).", panel=OPTIMISATION, low=1)
    lr: float = option(0.1, "Peak learning rate, cosine-annealed to 0 per step.", panel=OPTIMISATION, low=0,
                       low_open=True)
    wd: float = option(5e-4, "Weight decay.", panel=OPTIMISATION, low=0)
    momentum: float = option(0.9, "SGD momentum.", panel=OPTIMISATION, low=0, high=1, high_open=True)
    optim: str = option("sgd", "sgd (momentum, the paper's recipe) or adamw (much faster for a segmenter trained "
                        "from scratch).", panel=OPTIMISATION, choices=Optim)
    warmup_epochs: int = option(0, "Epochs of linear learning-rate warm-up before the cosine schedule.",
                                panel=OPTIMISATION)
    lr_schedule: str = option("step", "step (cosine annealing per step, after --warmup-epochs) or epoch (the paper's "
                              "code: the rate set once per epoch, cosine over epochs, the warm-up factor "
                              "multiplying it).", panel=OPTIMISATION, choices=LrSchedule)
    decay_norm_bias: bool = option(False, "Also apply weight decay to BatchNorm parameters and biases (the paper's "
                                   "code exempts them).", panel=OPTIMISATION,
                                   flags="--decay-norm-bias/--no-decay-norm-bias")
    wd_exempt: str = option("1d", "Parameters without weight decay (unless --decay-norm-bias): 1d (every BatchNorm "
                            "parameter and bias) or names (the paper's code: names containing bias, bn or ln, so "
                            "the decoder's and head's BatchNorms are decayed).", panel=OPTIMISATION,
                            choices=WdExempt)
    image_size: int = option(224, "Training/eval resolution, a multiple of 16.", panel=DATA, low=16, high=4096)
    crop_scale: float = option(0.08, "Smallest RandomResizedCrop area, as a fraction of the image.", panel=DATA,
                               low=0, high=1, low_open=True)
    workers: int | str = option("auto", "DataLoader worker processes: a number, or auto (on CUDA the CPU count, "
                                "capped at 8 per GPU, with persistent workers and pinned memory; 0 on the CPU).",
                                panel=RUNTIME, parse=parse_workers)
    seed: int = seed_option("Seed of every random choice; same seed, same run.")
    device: str = device_option()
    amp: str = option("off", "Mixed precision on CUDA.", panel=RUNTIME, choices=Amp)
    channels_last: bool = option(False, "channels_last memory format.", panel=RUNTIME,
                                 flags="--channels-last/--no-channels-last")
    sync_bn: bool = option(False, "Under torchrun on CUDA, synchronise BatchNorm statistics across the GPUs "
                           "(SyncBatchNorm, the paper's code).", panel=RUNTIME, flags="--sync-bn/--no-sync-bn")
    log_interval: int = option(50, "Off a terminal (a log file, SLURM): a progress line every this many steps (and "
                               "at least every minute) with the running loss, accuracy, lr, images/s and the run's "
                               "ETA; on a terminal, progress bars.", panel=RUNTIME, low=1)
    cseg: float = option(0.5, "Segmentation-loss weight c_seg (Eq. 5, Eq. 8, Eq. 10).", panel=OPTIMISATION, low=0,
                         high=1)
    seg_only_epochs: int = option(0, "First epochs train the segmenter alone (segmentation loss only, clean "
                                  "inputs), then the whole model. From a from-scratch segmenter give about half "
                                  "of --epochs, or the classification loss turns it into a classifier of blobs.",
                                  panel=OPTIMISATION)
    seg_loss_norm: str = option("batch", "batch (the paper's code: samples without a mask count as zero, so "
                                "--seg-frac f weighs the term by about f) or labelled (mean over masked samples "
                                "only).", panel=OPTIMISATION, choices=SegLossNorm)
    adv: str = option("none", "Adversarial training: none, pgd (Eq. 8, Eq. 9) or trades (Eq. 10, Eq. 11).", panel=ADVERSARY,
                      choices=Adv)
    norm: str = option("Linf", "Threat model of the training and validation attacks: Linf (the paper's) or L2 "
                       "(then give --eps and --step-size, e.g. --eps 1.0 --step-size 0.25).", panel=ADVERSARY,
                       choices=Norm)
    eps: float = option(8 / 255, "Budget on [0, 1] pixels, the ball's radius in --norm: a number or a fraction.",
                        panel=ADVERSARY, parse=parse_fraction, shown="8/255", low=0)
    step_size: float = option(2 / 255, "PGD step size: a number or a fraction.", panel=ADVERSARY,
                              parse=parse_fraction, shown="2/255", low=0)
    steps: int = option(10, "PGD steps while training.", panel=ADVERSARY, low=0)
    beta: float = option(0.5, "TRADES β (Eq. 10).", panel=ADVERSARY, low=0)
    trades_bn: str = option("two-pass", "TRADES BatchNorm: two-pass (train-mode passes over the clean and the "
                            "adversarial batch, as TRADES' reference code) or concat (one pass over both together, "
                            "the paper's code).", panel=ADVERSARY, choices=TradesBN)
    seg_frac: float = option(1.0, "Fraction of training samples keeping their part mask (§5.3).", panel=DATA, low=0,
                             high=1, low_open=True)
    seg_labels: str = option("part", label_kinds.label_kinds_help, panel=DATA, choices=label_kind_choices)
    val_steps: int | None = option(None, "PGD steps for validation (the paper's code: 100).", panel=ADVERSARY,
                                   shown="--steps", low=0)
    val_step_size: float | None = option(None, "PGD step size for validation (the paper's code: 0.002).",
                                         panel=ADVERSARY, parse=parse_fraction, shown="--step-size")
    logger: list[str] = option(help="Experiment tracker to log to, repeatable: tensorboard (<out>/tensorboard), "
                               "wandb (offline, <out>/wandb; upload with `wandb sync`) or mlflow (a local file "
                               "store, <out>/mlruns): scalars every --log-interval steps and every epoch, the "
                               "configuration and, for part models, a figure of predicted masks per epoch. Each "
                               "needs its library: pip install 'partcli[NAME]'.", panel=RUN, choices=Logger,
                               parse=parse_loggers, shown="none", default_factory=list)
    val_every: int = option(1, "Validate, and update best.pt, every N epochs (the paper's code: 2); the last epoch "
                            "is always validated.", panel=RUN, low=1)
    best_rule: str = option("max-adv", "best.pt of an adversarial run: max-adv (highest PGD validation accuracy) or "
                            "clean-ge-adv (the paper's code: highest among epochs whose clean accuracy is at least "
                            "their PGD accuracy).", panel=ADVERSARY, choices=BestRule)
    # Written by a resume that changed --epochs: [epoch reached, --epochs until then] per change, in order. The
    # cosine schedule of the epochs after each point is planned over the next --epochs; giving a run's
    # config.yaml back as --config replays the same schedule.
    replanned: list[list[int]] = option(panel=RUN, cli=False, parse=parse_replanned, default_factory=list)
