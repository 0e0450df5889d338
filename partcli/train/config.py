"""The training configuration shared by ``pretrain`` and ``train`` (one typed dataclass, DESIGN §5)."""
from __future__ import annotations

from dataclasses import dataclass

ADV_MODES = ("none", "pgd", "trades")
AMP_MODES = ("off", "bf16", "fp16")
SEG_LABELS = ("part", "object", "box", "centroid")
OPTIMIZERS = ("sgd", "adamw")
SEG_LOSS_NORMS = ("batch", "labelled")


@dataclass
class TrainConfig:
    data: str = ""
    out: str = ""
    arch: str = "bbox"
    backbone: str = "resnet18"
    pretrained: str | None = None
    init: str | None = None
    pool: int = 4
    drop_background: bool = False
    concat_input: bool = False
    epochs: int = 50
    batch_size: int = 128
    lr: float = 0.1
    wd: float = 5e-4
    momentum: float = 0.9
    optim: str = "sgd"
    warmup_epochs: int = 0
    decay_norm_bias: bool = False
    image_size: int = 224
    crop_scale: float = 0.08
    workers: int = 0
    seed: int = 0
    device: str = "auto"
    amp: str = "off"
    channels_last: bool = False
    cseg: float = 0.5
    seg_only_epochs: int = 0
    seg_loss_norm: str = "batch"
    adv: str = "none"
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10
    beta: float = 0.5
    seg_frac: float = 1.0
    seg_labels: str = "part"
    val_steps: int | None = None
