"""Build any partcli model by name from a plain, checkpoint-storable configuration (DESIGN §3)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torchvision
from torch import nn

from partcli.errors import PartcliError
from partcli.models.heads import BBoxHead, DecoderFeatureHead, DownsampledHead, PixelHead
from partcli.models.part_model import Classifier, PartModel
from partcli.models.weights import Loaded, load_pretrained

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
    bbox_score: str = "logit"  # the bbox head's features (``partcli.models.bbox``); checkpoints before it: "prob"

    @property
    def is_part_model(self) -> bool:
        return self.arch in PART_ARCHS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "ModelConfig":
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


def build_model(cfg: ModelConfig, pretrained: str | None = None) -> nn.Module:
    """Build the model, its backbone from ``pretrained`` when given (``partcli.models.weights``: imagenet, timm,
    timm:<model>.<tag> or a file), else randomly initialised."""
    model, _ = build_model_with_weights(cfg, pretrained)
    return model


def build_model_with_weights(cfg: ModelConfig, pretrained: str | None = None) -> tuple[nn.Module, Loaded | None]:
    """``build_model``, also returning what ``pretrained`` loaded (None when nothing was)."""
    if cfg.arch not in ARCHS:
        raise PartcliError(f"--arch {cfg.arch!r}: expected one of {', '.join(ARCHS)}")
    if cfg.arch == "resnet":
        try:
            net = torchvision.models.get_model(cfg.backbone, weights=None, num_classes=cfg.num_classes)
        except ValueError:
            raise PartcliError(f"--backbone {cfg.backbone!r}: not a torchvision classification model") from None
        model: nn.Module = Classifier(net)
    else:
        segmenter = _deeplab(cfg)
        model = PartModel(segmenter, _head(cfg, segmenter))
    loaded = load_pretrained(model, cfg.arch, cfg.backbone, pretrained) if pretrained else None
    return model, loaded


def _deeplab(cfg: ModelConfig) -> nn.Module:
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
        return BBoxHead(k, c, score=cfg.bbox_score)
    if cfg.arch == "pixel":
        if len(cfg.part_to_class) != k:
            raise ValueError("pixel head needs part_to_class for every part")
        return PixelHead(cfg.part_to_class, c)
    return DecoderFeatureHead(segmenter.segmentation_head[0].in_channels, c, pool=cfg.pool)
