"""Build any partcli model by name from a plain, checkpoint-storable configuration.

Architectures are registered in one table (``register_arch``, in the manner of timm's ``register_model``): each
entry names an ``--arch``, says whether it is a part model, and builds the model from a ``ModelConfig``. The
``--arch`` choices, ``partcli info --models``, the tests and the importer of the authors' checkpoints read the
table. Backbones: a baseline's ``--backbone`` is a torchvision classification model or, failing that, a timm model
(``timm:<name>`` asks for timm's even when torchvision has the name); a part model's is a
segmentation_models_pytorch encoder (its own list, or ``tu-<timm name>``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torchvision
from torch import nn

from partcli.errors import PartcliError
from partcli.models.heads import BBoxHead, DecoderFeatureHead, DownsampledHead, PixelHead
from partcli.models.part_model import IMAGENET_MEAN, IMAGENET_STD, Classifier, PartModel
from partcli.models.weights import Loaded, load_pretrained

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
    output_stride: int = 16  # the segmenter encoder's (DeepLabv3+: 16, the paper's, or 8); checkpoints before it: 16

    @property
    def is_part_model(self) -> bool:
        return self.arch in PART_ARCHS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> "ModelConfig":
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


def unseen_differences(a: ModelConfig, b: ModelConfig) -> list[str]:
    """Settings in which two models of the same weight shapes differ (the shapes do not reveal them)."""
    unseen = (("bbox_score", a.arch == "bbox"), ("output_stride", a.is_part_model))
    return [name for name, applies in unseen if applies and getattr(a, name) != getattr(b, name)]


def build_model(cfg: ModelConfig, pretrained: str | None = None) -> nn.Module:
    """Build the model, its backbone from ``pretrained`` when given (``partcli.models.weights``: imagenet, timm,
    timm:<model>.<tag> or a file), else randomly initialised."""
    model, _ = build_model_with_weights(cfg, pretrained)
    return model


def build_model_with_weights(cfg: ModelConfig, pretrained: str | None = None) -> tuple[nn.Module, Loaded | None]:
    """``build_model``, also returning what ``pretrained`` loaded (None when nothing was)."""
    entry = ARCH_REGISTRY.get(cfg.arch)
    if entry is None:
        raise PartcliError(f"--arch {cfg.arch!r}: expected one of {', '.join(ARCHS)}")
    model = entry.build(cfg)
    loaded = load_pretrained(model, cfg.arch, cfg.backbone, pretrained) if pretrained else None
    return model, loaded


# ------------------------------------------------------------------------------------------------ the registry
@dataclass(frozen=True)
class ArchEntry:
    """One registered architecture."""

    name: str
    build: Callable[[ModelConfig], nn.Module]
    part_model: bool
    summary: str  # one line for listings


ARCH_REGISTRY: dict[str, ArchEntry] = {}


def register_arch(name: str, *, part_model: bool, summary: str) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(cfg) -> nn.Module`` as the builder of ``--arch name``."""

    def register(fn: Callable[[ModelConfig], nn.Module]) -> Callable[[ModelConfig], nn.Module]:
        if name in ARCH_REGISTRY:
            raise ValueError(f"architecture {name!r} is registered twice")
        ARCH_REGISTRY[name] = ArchEntry(name, fn, part_model, summary)
        return fn

    return register


@register_arch("resnet", part_model=False, summary="baseline: a torchvision (else timm) classifier, --backbone names it")
def build_baseline(cfg: ModelConfig) -> nn.Module:
    net, mean, std = classifier_network(cfg.backbone, cfg.num_classes)
    return Classifier(net, mean, std)


@register_arch("downsampled", part_model=True, summary="part masks pooled to --pool × --pool, a conv and two FC (§3.2)")
def build_downsampled(cfg: ModelConfig) -> nn.Module:
    head = DownsampledHead(cfg.num_parts, cfg.num_classes, pool=cfg.pool, drop_background=cfg.drop_background,
                           concat_input=cfg.concat_input)
    return PartModel(deeplab(cfg), head)


@register_arch("bbox", part_model=True, summary="5 soft bounding-box features per part, a tiny MLP (§3.3, Eq. 1 to Eq. 4)")
def build_bbox(cfg: ModelConfig) -> nn.Module:
    return PartModel(deeplab(cfg), BBoxHead(cfg.num_parts, cfg.num_classes, score=cfg.bbox_score))


@register_arch("twohead", part_model=True, summary="a classifier on the segmenter decoder's features (App. C.1)")
def build_twohead(cfg: ModelConfig) -> nn.Module:
    segmenter = deeplab(cfg)
    return PartModel(segmenter, DecoderFeatureHead(segmenter.segmentation_head[0].in_channels, cfg.num_classes,
                                                   pool=cfg.pool))


@register_arch("pixel", part_model=True, summary="part logits summed per class, averaged over pixels (App. C.2)")
def build_pixel(cfg: ModelConfig) -> nn.Module:
    if len(cfg.part_to_class) != cfg.num_parts:
        raise ValueError("pixel head needs part_to_class for every part")
    return PartModel(deeplab(cfg), PixelHead(cfg.part_to_class, cfg.num_classes))


ARCHS = tuple(ARCH_REGISTRY)
PART_ARCHS = tuple(name for name, entry in ARCH_REGISTRY.items() if entry.part_model)
TIMM_PREFIX = "timm:"


# ------------------------------------------------------------------------------------------------ backbones
def classifier_network(backbone: str, num_classes: int) -> tuple[nn.Module, tuple, tuple]:
    """A baseline's network with ``num_classes`` outputs and the input mean and std it expects: torchvision's
    model of that name (ImageNet statistics), else timm's (the statistics of its pretrained configuration)."""
    name = backbone.removeprefix(TIMM_PREFIX)
    if not backbone.startswith(TIMM_PREFIX):
        try:
            return (torchvision.models.get_model(name, weights=None, num_classes=num_classes),
                    IMAGENET_MEAN, IMAGENET_STD)
        except ValueError:
            pass
    import timm

    if not timm.is_model(name):
        raise PartcliError(f"--backbone {backbone!r}: neither a torchvision classification model nor a timm model "
                           "(see torchvision.models.list_models() and timm.list_models())")
    try:  # vision transformers then take any --image-size divisible by their patch
        net = timm.create_model(name, pretrained=False, num_classes=num_classes, dynamic_img_size=True)
    except TypeError:  # models without that argument
        net = timm.create_model(name, pretrained=False, num_classes=num_classes)
    config = getattr(net, "pretrained_cfg", None) or {}
    return net, tuple(config.get("mean", IMAGENET_MEAN)), tuple(config.get("std", IMAGENET_STD))


def deeplab(cfg: ModelConfig) -> nn.Module:
    """The part segmenter: DeepLabv3+ on the smp encoder ``cfg.backbone``, K + 1 output channels."""
    import segmentation_models_pytorch as smp

    try:
        return smp.DeepLabV3Plus(encoder_name=cfg.backbone, encoder_weights=None, classes=cfg.num_parts + 1,
                                 encoder_output_stride=cfg.output_stride)
    except (KeyError, ValueError, RuntimeError):
        raise PartcliError(f"--backbone {cfg.backbone!r}: not a segmentation_models_pytorch encoder "
                           "(see segmentation_models_pytorch.encoders.get_encoder_names(), or tu-<timm name>)") from None


def model_catalogue() -> list[tuple[str, str, str]]:
    """(name, kind, summary) of every registered architecture, for listings."""
    return [(e.name, "part model" if e.part_model else "baseline", e.summary) for e in ARCH_REGISTRY.values()]
