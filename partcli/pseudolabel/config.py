"""The configuration of ``partcli pseudolabel`` (one typed dataclass; each field an option's one
definition, ``partcli.options``)."""
from __future__ import annotations

from dataclasses import dataclass

from partcli.config import parse_pretrained, parse_workers
from partcli.options import DATA, MODEL, OPTIMISATION, RUN, RUNTIME, device_option, option, seed_option
from partcli.tracking import Logger, parse_loggers


@dataclass
class PseudoLabelConfig:
    data: str = option("", "Prepared dataset whose training masks are (partly) kept.", panel=DATA, path=True)
    out: str = option("", "New prepared dataset to write (must not exist or be empty); the segmenter trains in "
                      "<out>.segmenter/ and ends up in <out>/segmenter/.", panel=RUN, path=True)
    frac: float = option(0.1, "Fraction of training samples keeping their ground-truth mask, stratified per class "
                         "(the same choice as `train --seg-frac` with the same --seed).", panel=DATA, low=0, high=1,
                         low_open=True)
    unlabelled: str | None = option(None, "Extra images with a class label and no mask: a folder with labels.csv "
                                    "(image,label = path relative to it, class name); they get pseudo masks too.",
                                    panel=DATA, path=True)
    backbone: str = option("resnet50", "smp encoder of the segmenter.", panel=MODEL)
    pretrained: str | None = option(None, "Encoder weights: none (random), imagenet (torchvision's ImageNet "
                                    "weights; smp's for other encoders), timm or timm:<model>.<tag>, or a local "
                                    "state-dict file (as `train --pretrained`).", panel=MODEL,
                                    parse=parse_pretrained, shown="none")
    epochs: int = option(50, "Segmenter training epochs.", panel=OPTIMISATION, low=1)
    batch_size: int = option(128, "Segmenter training and prediction batch size.", panel=OPTIMISATION, low=1)
    lr: float = option(0.1, "SGD learning rate of the segmenter, cosine-annealed.", panel=OPTIMISATION, low=0,
                       low_open=True)
    image_size: int = option(224, "Segmenter resolution, a multiple of 16; masks are predicted back at each "
                             "image's own size.", panel=DATA, low=16, high=4096)
    seed: int = seed_option("Seed of the kept fraction and of the segmenter's training.")
    device: str = device_option()
    workers: int | str = option("auto", "DataLoader worker processes: a number, or auto (on CUDA the CPU count, "
                                "capped at 8; 0 on the CPU).", panel=RUNTIME, parse=parse_workers)
    logger: list[str] = option(help="Experiment tracker of the segmenter's training, repeatable: tensorboard, wandb "
                               "(offline) or mlflow (a local file store), as `train --logger`; its files are in the "
                               "segmenter's run folder. Each needs its library: pip install 'partcli[NAME]'.",
                               panel=RUN, choices=Logger, parse=parse_loggers, shown="none", default_factory=list)
