"""Pretrained backbone weights (``--pretrained``), fetched through the libraries' own weight APIs and caches.

Sources:

- ``imagenet``: ImageNet weights as the paper's code used them. A torchvision classifier, or a segmenter encoder
  that is a torchvision ResNet (smp's ``resnet*``/``resnext*``), gets torchvision's ``IMAGENET1K_V1`` weights (the
  paper's segmenter encoder: ``resnet50``'s), fetched by ``torch.hub`` into ``$TORCH_HOME/hub/checkpoints``; any
  other smp encoder gets smp's own ``imagenet`` weights from the Hugging Face hub cache.
- ``timm`` or ``timm:<model>.<tag>``: timm's weights (its default tag, or the one named), fetched by timm from the
  Hugging Face hub cache; ``timm:resnet50.ram_in1k`` is the paper's ResNet-50 baseline (timm 0.4.12's ``resnet50``).
  They load into torchvision ResNet-family backbones, whose tensor names timm's ResNets share.
- a local file: a state dict (or a checkpoint holding one under ``state_dict``/``model``).

Nothing is downloaded unless a source other than a file is asked for. Offline, a source that is not cached fails
with one line naming the file to place and where. The classifier layer of a baseline (1000 ImageNet classes) is
never loaded; every other tensor of the backbone must be.
"""
from __future__ import annotations

import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torchvision
from torch import nn

from partcli.config import TIMM_PREFIX
from partcli.errors import PartcliError



@dataclass(frozen=True)
class Loaded:
    """What ``load_pretrained`` put into the model, for the run's start-up line."""

    source: str  # the --pretrained value
    description: str  # e.g. "torchvision resnet50 IMAGENET1K_V1 (…/resnet50-0676ba61.pth)"


def load_pretrained(model: nn.Module, arch: str, backbone: str, source: str) -> Loaded:
    """Fill ``model``'s backbone (a baseline's network or a part model's encoder) from ``source``."""
    part_model = arch != "resnet"
    target: nn.Module = model.segmenter.encoder if part_model else model.net
    what = f"the {backbone} {'segmenter encoder' if part_model else 'backbone'}"
    if source == "imagenet":
        if _torchvision_backed(target, backbone, part_model):
            state, description = torchvision_state(backbone)
        elif part_model:
            state, description = smp_state(backbone)
        else:
            raise PartcliError(f"--pretrained imagenet: torchvision has no ImageNet weights for --backbone {backbone}")
    elif source == "timm" or source.startswith(TIMM_PREFIX):
        state, description = timm_state(backbone, source)
    else:
        state, description = file_state(Path(source))
    copy_backbone(target, state, f"--pretrained {source}", what)
    return Loaded(source, f"{description} into {what}")


# ------------------------------------------------------------------------------------------------ sources
def torchvision_state(backbone: str) -> tuple[dict[str, torch.Tensor], str]:
    """torchvision's ImageNet weights of ``backbone`` (IMAGENET1K_V1, the weights of the paper's code, else the
    default), from the torch hub cache, downloaded into it first when missing."""
    weights_enum = torchvision.models.get_model_weights(backbone)
    weights = getattr(weights_enum, "IMAGENET1K_V1", None) or weights_enum.DEFAULT
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not cached.is_file():
        _download(weights.url, cached, "imagenet", f"torchvision's {backbone} ImageNet weights")
    state = _read_state(lambda: weights.get_state_dict(progress=False, check_hash=False), cached, "imagenet")
    return state, f"torchvision {backbone} {weights.name} ({cached})"


def timm_state(backbone: str, source: str) -> tuple[dict[str, torch.Tensor], str]:
    """timm's weights (``timm`` = its default tag for ``backbone``), through ``timm.create_model(pretrained=True)``."""
    import timm

    backbone = backbone.removeprefix(TIMM_PREFIX)  # a baseline built by timm on request (--backbone timm:<name>)
    name = source[len(TIMM_PREFIX):] if source.startswith(TIMM_PREFIX) else backbone
    arch_name = name.split(".")[0]
    if arch_name != backbone:
        raise PartcliError(f"--pretrained {source}: these are weights of {arch_name}, but --backbone is {backbone}")
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001 - timm raises RuntimeError or others for unknown names
        cfg = None
    if cfg is None:
        raise PartcliError(f"--pretrained {source}: timm has no pretrained weights named {name} "
                           "(see timm.list_pretrained())")
    try:
        net = timm.create_model(name, pretrained=True, num_classes=0)
    except (OSError, urllib.error.URLError, RuntimeError, ValueError) as exc:
        url = getattr(cfg, "url", None) or ""
        old_cache = Path(torch.hub.get_dir()) / "checkpoints"
        hint = (f"put {Path(url).name} (from {url}) into {old_cache}/ and set TIMM_USE_OLD_CACHE=1, or "
                if url else "")
        raise PartcliError(f"--pretrained {source}: timm could not fetch {cfg.hf_hub_id or name} "
                           f"({exc.__class__.__name__}: offline?); {hint}fill the Hugging Face cache with "
                           f"`huggingface-cli download {cfg.hf_hub_id or name}` on a machine online") from None
    return net.state_dict(), f"timm {name} ({cfg.hf_hub_id or cfg.url})"


def smp_state(encoder: str) -> tuple[dict[str, torch.Tensor], str]:
    """segmentation_models_pytorch's own ImageNet weights of an encoder, from the Hugging Face hub cache."""
    from segmentation_models_pytorch.encoders import encoders, get_encoder

    settings = encoders.get(encoder, {}).get("pretrained_settings", {}).get("imagenet")
    if settings is None:
        raise PartcliError(f"--pretrained imagenet: segmentation_models_pytorch has no ImageNet weights for the "
                           f"{encoder} encoder; give a weights file")
    try:
        net = get_encoder(encoder, weights="imagenet")
    except (OSError, urllib.error.URLError, RuntimeError) as exc:
        raise PartcliError(f"--pretrained imagenet: could not fetch {settings['repo_id']} (revision "
                           f"{settings['revision']}) from the Hugging Face hub ({exc.__class__.__name__}: offline?); "
                           f"fill its cache with `huggingface-cli download {settings['repo_id']} --revision "
                           f"{settings['revision']}` on a machine online") from None
    return net.state_dict(), f"segmentation_models_pytorch {settings['repo_id']}"


def file_state(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    """A local state dict, or the one a checkpoint holds under ``state_dict`` or ``model``."""
    if not path.is_file():
        raise PartcliError(f"--pretrained {path}: file not found (or: none, imagenet, timm, timm:<model>.<tag>)")
    state = _read_state(lambda: torch.load(path, map_location="cpu", weights_only=True), path, str(path))
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), dict):
            state = state[key]
    return state, str(path.resolve())


# ------------------------------------------------------------------------------------------------ helpers
def copy_backbone(target: nn.Module, state: dict[str, Any], option: str, what: str) -> None:
    """Load ``state`` into ``target``: every tensor of ``target`` must be given with its shape, except a
    classifier layer (the ImageNet head of a baseline); tensors of ``state`` that ``target`` lacks (an ImageNet
    head, a ResNet's ``fc`` that smp's encoders drop) are ignored. A ``module.`` prefix is removed."""
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    own = target.state_dict()
    head = _classifier_names(target)
    missing = [k for k in own if k not in head and (k not in state or state[k].shape != own[k].shape)]
    if missing:
        found = [k for k in own if k in state]
        raise PartcliError(f"{option}: the weights do not fit {what} ({len(missing)} of its {len(own)} tensors "
                           f"missing or of another shape, e.g. {missing[0]!r}; {len(found)} matched)")
    usable = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    target.load_state_dict(usable, strict=False)


def _classifier_names(module: nn.Module) -> set[str]:
    """Tensor names of a torchvision classifier's last layer (``fc`` / ``classifier`` / ``heads``), which a
    backbone with another number of classes does not take from ImageNet weights."""
    last = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not last or not last[-1].split(".")[0] in ("fc", "classifier", "heads", "head"):
        return set()
    return {f"{last[-1]}.{p}" for p, _ in module.get_submodule(last[-1]).named_parameters()}


def _torchvision_backed(target: nn.Module, backbone: str, part_model: bool) -> bool:
    """Whether torchvision has ImageNet weights for ``backbone`` that ``target`` can take (a baseline built by
    torchvision, or an smp encoder that subclasses torchvision's ResNet)."""
    try:
        torchvision.models.get_model_weights(backbone)
    except (ValueError, KeyError):
        return False
    return not part_model or isinstance(target, torchvision.models.ResNet)


def _download(url: str, dest: Path, source: str, what: str) -> None:
    """torch.hub's download into its cache (no output unless bytes arrive); offline, one line saying what to put
    where."""
    created = [p for p in [dest.parent, *dest.parent.parents] if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(dest), progress=True)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        for folder in created:  # leave no empty cache folders behind a failed download
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise PartcliError(f"--pretrained {source}: cannot download {what} ({exc.__class__.__name__}: offline?); "
                           f"put {dest.name} (from {url}) into {dest.parent}/") from None


def _read_state(read: Callable[[], Any], path: Path, source: str) -> dict[str, Any]:
    try:
        state = read()
    except Exception as exc:  # noqa: BLE001 - a damaged file makes torch.load raise almost anything
        raise PartcliError(f"--pretrained {source}: {path} is not a readable PyTorch weights file "
                           f"({exc.__class__.__name__}); delete it and fetch it again") from None
    if not isinstance(state, dict):
        raise PartcliError(f"--pretrained {source}: {path} holds no state dict")
    return state
