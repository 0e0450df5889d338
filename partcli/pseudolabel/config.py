"""The configuration of ``partcli pseudolabel`` (one typed dataclass, DESIGN §5)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PseudoLabelConfig:
    data: str = ""
    out: str = ""
    frac: float = 0.1
    unlabelled: str | None = None
    backbone: str = "resnet50"
    pretrained: str | None = None
    epochs: int = 50
    batch_size: int = 128
    lr: float = 0.1
    image_size: int = 224
    seed: int = 0
    device: str = "auto"
    workers: int = 0
