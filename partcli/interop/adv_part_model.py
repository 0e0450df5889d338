"""The paper authors' training checkpoints: which model a file holds, and where its tensors go in partcli's.

Their files hold ``{epoch, state_dict, optimizer, scaler, best_acc1, args}``: ``args`` is their training script's
``argparse.Namespace``, and every state-dict key starts with ``module.`` (DataParallel). Two key layouts exist:

- ``2022``, the code behind the paper: a part model is ``segmenter.0.{mean,std}`` (input normalisation),
  ``segmenter.1.<DeepLabv3+>`` and ``core_model.<i>`` (the classifier head, an ``nn.Sequential``); a baseline is
  ``0.{mean,std}`` and ``1.<ResNet>``.
- ``later``, their code with the ``Classifier``/``SegClassifier`` wrappers: ``{mean,std}`` and ``_model.<...>``,
  the segmenter under ``_model.segmenter.`` or (their downsampled model's later attribute) ``_model._segmenter.``.

DeepLabv3+ (segmentation_models_pytorch) and ResNet tensors keep their names; timm's and torchvision's ResNets
name them alike. Their ``--experiment`` string names the model, ``<labels>-<model>[-<options>]``: e.g.
``part-wbbox-norm_img-semi`` (bounding-box), ``part-pooling-4-semi`` (downsampled, 4×4), ``normal`` (baseline).
Their model code tests options as substrings of the whole string (``"bn" in experiment``); so does this module.
"""
from __future__ import annotations

from argparse import Namespace
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, NoReturn

import torch
from torch import nn

from partcli.errors import PartcliError

# Where the keys of each layout go: (prefix after ``module.``, group); the first matching prefix wins.
_RULES = {
    "2022": (("segmenter.0.", "normalize"), ("segmenter.1.", "segmenter"), ("core_model.", "head"),
             ("0.", "normalize"), ("1.", "net")),
    "later": (("_model.segmenter.", "segmenter"), ("_model._segmenter.", "segmenter"),
              ("_model.core_model.", "head"), ("_model.", "net"), ("", "normalize")),
}
_SEGMENTER_PARTS = ("encoder.", "decoder.", "segmentation_head.")

# The authors' head layers that hold tensors -> partcli's head layers (``partcli.models.heads``).
# pooling: AdaptiveAvgPool2d, Conv2d, BatchNorm2d, ReLU, Flatten, Linear, BatchNorm1d, ReLU, Linear.
# wbbox: Identity, Flatten, BatchNorm1d, Linear, ReLU, BatchNorm1d, Linear.
HEAD_LAYERS: dict[str, dict[int, str]] = {
    "downsampled": {1: "conv.0", 2: "conv.1", 5: "fc.0", 6: "fc.1", 8: "fc.3"},
    "bbox": {2: "mlp.1", 3: "mlp.2", 5: "mlp.4", 6: "mlp.5"},
}
# ResNets told apart by their keys: (block type, blocks per stage) -> name (smp encoders and torchvision alike).
RESNETS = {("basic", (2, 2, 2, 2)): "resnet18", ("basic", (3, 4, 6, 3)): "resnet34",
           ("bottleneck", (3, 4, 6, 3)): "resnet50", ("bottleneck", (3, 4, 23, 3)): "resnet101",
           ("bottleneck", (3, 8, 36, 3)): "resnet152"}
_UNSUPPORTED_MODELS = {
    "bbox": "their earlier, unweighted bounding-box model (partcli's bbox head is their wbbox)",
    "mask": "a ResNet on the part masks", "clean": "a ResNet on the part masks",
    "groundtruth": "a ResNet on ground-truth masks", "seg": "a ResNet on mask-weighted images",
    "seg_cat": "a ResNet on mask-weighted images", "fc": "a fully connected layer on the whole masks",
    "pixel": "their pixel-count model", "2heads_d": "a two-headed model (partcli's twohead is another design)",
    "2heads_e": "a two-headed model (partcli's twohead is another design)",
    "bbox_2heads_d": "a DINO detector", "seq": "a DINO detector",
}
IMPORTED = "wbbox with norm_img, pooling-<p>, and ResNet baselines"


@dataclass(frozen=True)
class Entry:
    """One tensor of the file: its key there, the part of the model it belongs to, and its name within it."""

    key: str
    group: str  # normalize, segmenter, head (the authors' core_model) or net (a baseline's network)
    name: str


@dataclass(frozen=True)
class Layout:
    """A state dict sorted into the parts of one of the authors' models."""

    naming: str  # 2022 or later
    entries: list[Entry]
    tensors: Mapping[str, torch.Tensor]

    @property
    def is_part_model(self) -> bool:
        return any(e.group == "head" for e in self.entries)

    def group(self, name: str) -> dict[str, torch.Tensor]:
        return {e.name: self.tensors[e.key] for e in self.entries if e.group == name}

    def counts(self) -> dict[str, int]:
        return dict(Counter(e.group for e in self.entries))


@dataclass(frozen=True)
class Recognised:
    """What the authors' model is in partcli's terms."""

    experiment: str
    arch: str  # partcli's --arch: bbox, downsampled or resnet
    backbone: str
    num_classes: int
    channels: int | None  # the segmenter's non-background channels (parts, or classes for object labels)
    seg_labels: str = "part"  # part or object (what the segmenter predicts)
    pool: int = 4


def split_layout(state_dict: Mapping[str, Any], source: str) -> Layout:
    """Sort the file's tensors by the layout their keys follow; refuse keys of neither layout in one line."""
    if not state_dict:
        raise PartcliError(f"{source}: its state dict is empty")
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise PartcliError(f"{source}: state-dict entry {key!r} is not a named tensor; the file is not a model")
    strip = "module." if all(k.startswith("module.") for k in state_dict) else ""
    relative = {k: k[len(strip):] for k in state_dict}
    naming = "later" if any(r.startswith("_model.") or r in ("mean", "std") for r in relative.values()) else "2022"
    entries = []
    for key, rel in relative.items():
        place = _classify(rel, _RULES[naming])
        if place is None:
            raise PartcliError(f"{source}: key {key!r} fits neither of the paper authors' layouts (nor is the file a "
                               "partcli checkpoint)")
        entries.append(Entry(key, *place))
    layout = Layout(naming, entries, state_dict)
    _check_parts(layout, source)
    return layout


def _classify(rel: str, rules: tuple[tuple[str, str], ...]) -> tuple[str, str] | None:
    for prefix, group in rules:
        if rel.startswith(prefix):
            name = rel[len(prefix):]
            if group == "normalize" and name not in ("mean", "std"):
                continue
            return group, name
    return None


def _check_parts(layout: Layout, source: str) -> None:
    groups = set(layout.counts())
    if set(layout.group("normalize")) != {"mean", "std"}:
        raise PartcliError(f"{source}: no input normalisation (mean and std) in the authors' layout; not a model of "
                           "their classifier code")
    if "net" in groups and any(name.startswith(_SEGMENTER_PARTS) for name in layout.group("net")):
        raise PartcliError(f"{source}: a segmenter alone (the authors' seg-only training), not a classifier; "
                           "import the part model trained from it")
    if "net" in groups and groups & {"segmenter", "head"}:
        raise PartcliError(f"{source}: holds both a baseline network and a part model's tensors; not one model")
    if groups & {"segmenter", "head"} and not {"segmenter", "head"} <= groups:
        missing = "classifier head (core_model)" if "head" not in groups else "segmenter"
        raise PartcliError(f"{source}: a part model without its {missing}")


def args_from_keys(layout: Layout, experiment: str | None, source: str) -> Namespace:
    """The authors' arguments that matter here, for a file without them: read from the tensors' names and
    shapes, the experiment string from ``experiment`` (``--experiment``) or from the head's layers."""
    if not layout.is_part_model:
        net = layout.group("net")
        if "fc.weight" not in net:
            raise PartcliError(f"{source}: a baseline without a classifier layer (fc.weight)")
        return Namespace(experiment=experiment or "normal", arch=_resnet_name(net, source, "network"),
                         num_classes=int(net["fc.weight"].shape[0]))
    segmenter = layout.group("segmenter")
    if "segmentation_head.0.weight" not in segmenter:
        raise PartcliError(f"{source}: its segmenter has no segmentation_head.0.weight; not a DeepLabv3+")
    seg_labels = int(segmenter["segmentation_head.0.weight"].shape[0])
    layers = _head_layers(layout.group("head"))
    last = layers[max(layers)]
    if _weight_dims(last) != 2:
        raise PartcliError(f"{source}: its head's last layer (core_model.{max(layers)}) is not a linear layer")
    return Namespace(experiment=experiment or _head_experiment(layers, seg_labels, source),
                     seg_backbone=_resnet_name({k.removeprefix("encoder."): v for k, v in segmenter.items()
                                                if k.startswith("encoder.")}, source, "segmenter encoder"),
                     seg_arch="deeplabv3plus", seg_labels=seg_labels, num_classes=int(last["weight"].shape[0]))


def _head_layers(head: Mapping[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    layers: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in head.items():
        index, _, param = name.partition(".")
        layers.setdefault(int(index) if index.isdigit() else -1, {})[param] = tensor
    return layers


def _head_experiment(layers: dict[int, dict[str, torch.Tensor]], seg_labels: int, source: str) -> str:
    """The authors' experiment string a head's layers imply (their options as their code would spell them)."""
    convs = [i for i, layer in layers.items() if _weight_dims(layer) == 4]
    if convs:
        conv = layers[convs[0]]["weight"]
        options = ["nobg"] if conv.shape[1] == seg_labels - 1 else []
        options += ["bn"] if convs[0] != 1 else []  # a BatchNorm2d between the pooling and the conv
        return "-".join(["part", "pooling", str(conv.shape[-1]), *options])
    if _weight_dims(layers.get(0, {})) == 3:
        return "part-wbbox-conv1d"
    if "running_mean" in layers.get(2, {}) and layers[2]["running_mean"].shape[0] == 4 * (seg_labels - 1):
        return "part-wbbox-no_score"
    if "running_mean" in layers.get(2, {}):
        raise PartcliError(f"{source}: a bounding-box model without its training args: its weights do not say whether "
                           "its features were scaled to the image (the authors' norm_img); give --experiment, e.g. "
                           "part-wbbox-norm_img")
    raise PartcliError(f"{source}: its head (core_model layers {sorted(layers)}) is none of those partcli imports "
                       f"({IMPORTED})")


def _weight_dims(layer: Mapping[str, torch.Tensor]) -> int:
    """2: linear, 3: Conv1d, 4: Conv2d; 1: BatchNorm; 0: no weight."""
    weight = layer.get("weight")
    return 0 if weight is None else weight.dim()


def _resnet_name(weights: Mapping[str, torch.Tensor], source: str, what: str) -> str:
    """resnet18 … resnet152 from a ResNet's keys; refuse any other network."""
    blocks = tuple(len({k.split(".")[1] for k in weights if k.startswith(f"layer{s}.")}) for s in range(1, 5))
    kind = "bottleneck" if "layer1.0.conv3.weight" in weights else "basic"
    conv2 = weights.get("layer1.0.conv2.weight")
    plain = conv2 is not None and conv2.shape[0] == conv2.shape[1] == 64  # not a ResNeXt or wide ResNet
    name = RESNETS.get((kind, blocks)) if plain else None
    if name is None:
        raise PartcliError(f"{source}: no training args, and its {what} is not a ResNet partcli recognises by its "
                           f"keys ({', '.join(RESNETS.values())}); re-save the file with the authors' args")
    return name


def recognise(args: Namespace, source: str) -> Recognised:
    """Map the authors' arguments onto a partcli model; refuse, by name, what partcli cannot build."""
    experiment = _field(args, "experiment", str, source)
    if "seg-only" in experiment:
        raise PartcliError(f"{source}: experiment {experiment!r} is a segmenter alone (seg-only), not a classifier")
    if getattr(args, "obj_det_arch", None) == "dino":
        raise PartcliError(f"{source}: experiment {experiment!r} is a DINO detector model; partcli has none")
    tokens = experiment.split("-")
    labels = tokens[0]
    num_classes = _field(args, "num_classes", int, source)
    if labels not in ("part", "object", "fg"):  # their code builds a plain classifier then
        arch = _field(args, "arch", str, source)
        if arch not in RESNETS.values():
            raise PartcliError(f"{source}: a baseline with --arch {arch}; partcli imports the ResNet ones "
                               f"({', '.join(RESNETS.values())})")
        return Recognised(experiment, "resnet", arch, num_classes, None)
    if labels == "fg":
        raise PartcliError(f"{source}: experiment {experiment!r}: fg labels (a foreground/background segmenter) have "
                           "no partcli counterpart (part and object labels do)")
    seg_arch = getattr(args, "seg_arch", "deeplabv3plus")
    if seg_arch != "deeplabv3plus":
        raise PartcliError(f"{source}: --seg-arch {seg_arch}: partcli's part models use deeplabv3plus")
    model = tokens[1] if len(tokens) > 1 else ""
    channels = _field(args, "seg_labels", int, source) - 1
    backbone = _field(args, "seg_backbone", str, source)
    reason = _refusal(experiment, model)
    if reason:
        raise PartcliError(f"{source}: experiment {experiment!r}: {reason}; partcli imports {IMPORTED}")
    if model == "wbbox":
        return Recognised(experiment, "bbox", backbone, num_classes, channels, labels)
    try:
        pool = int(experiment[experiment.find("pooling"):].split("-")[1])
    except (IndexError, ValueError):
        raise PartcliError(f"{source}: experiment {experiment!r}: no pool size after 'pooling-'") from None
    return Recognised(experiment, "downsampled", backbone, num_classes, channels, labels, pool)


def _refusal(experiment: str, model: str) -> str | None:
    """Why partcli cannot build the authors' ``model`` with these options (None when it can)."""
    if model == "wbbox":
        if "conv1d" in experiment:
            return "conv1d (a 1-D convolution over each part's features) is not in partcli's bounding-box head"
        if "no_score" in experiment:
            return "no_score (4 features per part, no part score) is not partcli's bounding-box head"
        if "norm_img" not in experiment:
            return "wbbox without norm_img (centroids and spreads in pixels) is not partcli's bounding-box head"
        return None
    if model == "pooling":
        if "nobg" in experiment:
            return "nobg (its conv has 5·K channels, partcli's downsampled head 5·(K+1)) is not partcli's head"
        if "bn" in experiment:
            return "bn (a BatchNorm after pooling) is not in partcli's downsampled head"
        return None
    return f"model type {model!r} ({_UNSUPPORTED_MODELS.get(model, 'unknown to this importer')}) has no partcli " \
           "counterpart"


def _field(args: Namespace, name: str, kind: type, source: str) -> Any:
    value = getattr(args, name, None)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise PartcliError(f"{source}: its args have no {kind.__name__} {name!r} (got {value!r})")
    return value


def fill_model(model: nn.Module, layout: Layout, arch: str, source: str) -> None:
    """Load every tensor of ``layout`` into its place in ``model`` (built as ``arch``), strictly: every tensor of
    the model filled, every tensor of the file used, shapes equal; otherwise refuse naming the first misfit."""
    expected = model.state_dict()
    placed: dict[str, torch.Tensor] = {}
    for entry in layout.entries:
        target = partcli_key(entry, arch)
        tensor = layout.tensors[entry.key]
        if target is None or target not in expected:
            _misfit(source, arch, f"its tensor {entry.key!r} has no place in partcli's model")
        if tensor.shape != expected[target].shape:
            _misfit(source, arch, f"its tensor {entry.key!r} {_shape(tensor)} does not fit partcli's {target!r} "
                                  f"{_shape(expected[target])}")
        placed[target] = tensor
    missing = [k for k in expected if k not in placed]
    if missing:
        _misfit(source, arch, f"nothing in the file for partcli's {missing[0]!r} ({len(missing)} tensor(s) unfilled)")
    model.load_state_dict(placed)


def partcli_key(entry: Entry, arch: str) -> str | None:
    """partcli's state-dict key for one of the file's tensors (None when partcli's ``arch`` has no such layer)."""
    if entry.group != "head":
        return f"{entry.group}.{entry.name}"
    index, _, param = entry.name.partition(".")
    layer = HEAD_LAYERS.get(arch, {}).get(int(index)) if index.isdigit() else None
    return f"head.{layer}.{param}" if layer else None


def _misfit(source: str, arch: str, detail: str) -> NoReturn:
    raise PartcliError(f"{source}: does not fit the partcli {arch} model it was recognised as: {detail}")


def _shape(tensor: torch.Tensor) -> str:
    return "(" + "×".join(map(str, tensor.shape)) + ")"
