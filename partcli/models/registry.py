"""Build any partcli model by name from a plain, checkpoint-storable configuration (DESIGN §3)."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from partcli.errors import PartcliError
from partcli.models.heads import BBoxHead, DecoderFeatureHead, DownsampledHead, PixelHead
from partcli.models.part_model import Classifier, PartModel

PART_ARCHS = ("downsampled", "bbox", "twohead", "pixel")
ARCHS = ("resnet",) + PART_ARCHS


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model's structure (weights come from the checkpoint)."""

    arch: str = "bbox"
    backbone: str = "resnet18"
    num_classes: int = 0
    num_parts: int = 0
    part_to_class: list[int] = field(default_factory=list)
    pool: int = 4
    drop_background: bool = False
    concat_input: bool = False

    @property
    def is_part_model(self) -> bool:
        return self.arch in PART_ARCHS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "ModelConfig":
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


def build_model(cfg: ModelConfig, pretrained: str | Path | None = None) -> nn.Module:
    """Build the model; ``pretrained`` is a local state-dict file for the backbone (never downloaded)."""
    if cfg.arch not in ARCHS:
        raise PartcliError(f"--arch {cfg.arch!r}: expected one of {', '.join(ARCHS)}")
    if cfg.arch == "resnet":
        try:
            net = torchvision.models.get_model(cfg.backbone, weights=None, num_classes=cfg.num_classes)
        except ValueError:
            raise PartcliError(f"--backbone {cfg.backbone!r}: not a torchvision classification model") from None
        model: nn.Module = Classifier(net)
        target = net
    else:
        segmenter = _deeplab(cfg)
        model = PartModel(segmenter, _head(cfg, segmenter))
        target = segmenter.encoder
    if pretrained is not None:
        load_backbone_weights(target, pretrained)
    return model


def _deeplab(cfg: ModelConfig) -> nn.Module:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub; weights only via --pretrained
    import segmentation_models_pytorch as smp

    try:
        return smp.DeepLabV3Plus(encoder_name=cfg.backbone, encoder_weights=None, classes=cfg.num_parts + 1)
    except (KeyError, ValueError):
        raise PartcliError(f"--backbone {cfg.backbone!r}: not a segmentation_models_pytorch encoder") from None


def _head(cfg: ModelConfig, segmenter: nn.Module) -> nn.Module:
    k, c = cfg.num_parts, cfg.num_classes
    if cfg.arch == "downsampled":
        return DownsampledHead(k, c, pool=cfg.pool, drop_background=cfg.drop_background, concat_input=cfg.concat_input)
    if cfg.arch == "bbox":
        return BBoxHead(k, c)
    if cfg.arch == "pixel":
        if len(cfg.part_to_class) != k:
            raise ValueError("pixel head needs part_to_class for every part")
        return PixelHead(cfg.part_to_class, c)
    return DecoderFeatureHead(segmenter.segmentation_head[0].in_channels, c, pool=cfg.pool)


def load_backbone_weights(module: nn.Module, path: str | Path) -> None:
    """Load a local state dict into ``module``, skipping tensors whose name or shape does not match.

    Accepts a bare state dict or a dict with a ``state_dict``/``model`` entry (common checkpoint layouts).
    Refuses a file that matches nothing, so a wrong file is not silently ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise PartcliError(f"--pretrained {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input problem
        raise PartcliError(f"--pretrained {path}: not a PyTorch state dict ({exc.__class__.__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    own = module.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise PartcliError(f"--pretrained {path}: no tensor matches the {type(module).__name__} backbone")
    module.load_state_dict(usable, strict=False)
