"""Label kinds (``--seg-labels``): what the segmenter is trained on, as one registered entry per kind.

Each ``LabelKind`` says in one place what a kind means everywhere: how many channels the segmenter predicts
and which class each belongs to, how a part mask is relabelled (on the full-size mask, before augmentation),
which segmentation loss trains it, whether pixel accuracy can be measured against its masks, and what its mask
ids are called in figures. ``register_label_kind`` fills one table (in the manner of ``register_arch``) that the
``--seg-labels`` choices and help, training, ``evaluate``, the figures and the importer read; a checkpoint stores
the kind's name.

The table is read when the CLI starts (``--help``), so this module imports no torch: the mask functions of
``partcli.data.seg_labels`` and the losses of ``partcli.train.losses`` are imported when a kind first uses them.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

from partcli.errors import PartcliError

Relabel = Callable[[Any, list[int]], Any]  # (part mask tensor, part_to_class) -> mask tensor of the kind
Channels = Callable[[int, list[int]], tuple[int, list[int]]]  # (num_classes, part_to_class) -> (K, class of each)
LossFactory = Callable[[list[int], int, str], Callable]  # (part_to_class, num_classes, --seg-loss-norm) -> SegLossFn


def part_channels(num_classes: int, part_to_class: list[int]) -> tuple[int, list[int]]:
    """One channel per part."""
    return len(part_to_class), list(part_to_class)


def class_channels(num_classes: int, part_to_class: list[int]) -> tuple[int, list[int]]:
    """One channel per class."""
    return num_classes, list(range(num_classes))


def part_names(info: Any) -> list[str]:
    return [p.name for p in info.parts]


def class_names(info: Any) -> list[str]:
    return list(info.classes)


@dataclass(frozen=True)
class LabelKind:
    """One registered ``--seg-labels`` kind.

    ``relabel`` None: the part masks are used as they are. ``loss`` None: Eq. 7's pixel cross-entropy on the
    (relabelled) masks; otherwise it builds the kind's own segmentation loss. ``pixel_metric`` False: the kind
    has no pixel-level target, so no pixel accuracy is reported.
    """

    name: str
    help: str  # a phrase for --help, after the name: "parts merged per class, App. D.5"
    channels: Channels = part_channels
    relabel: Relabel | None = None
    loss: LossFactory | None = None
    pixel_metric: bool = True
    mask_names: Callable[[Any], list[str]] = part_names  # names of mask ids 1.. from a DatasetInfo

    def transform(self, part_to_class: list[int], then: Callable | None) -> Callable | None:
        """A dataset transform: ``then`` preceded by this kind's relabelling; ``then`` itself when there is none."""
        if self.relabel is None:
            return then
        from partcli.data.seg_labels import RelabelThen

        return RelabelThen(functools.partial(self.relabel, part_to_class=part_to_class), then)


LABEL_KINDS: dict[str, LabelKind] = {}


def register_label_kind(kind: LabelKind) -> LabelKind:
    """Add ``kind`` to the table; ``--seg-labels`` then offers it."""
    if kind.name in LABEL_KINDS:
        raise ValueError(f"label kind {kind.name!r} is registered twice")
    LABEL_KINDS[kind.name] = kind
    return kind


def label_kind(name: str, option: str = "--seg-labels") -> LabelKind:
    """The registered kind of that name (a checkpoint's stored name, or the option's value)."""
    kind = LABEL_KINDS.get(name)
    if kind is None:
        raise PartcliError(f"{option} {name!r}: expected one of {', '.join(LABEL_KINDS)}")
    return kind


def label_kinds_help() -> str:
    """The ``--seg-labels`` help text: every registered kind with its phrase."""
    kinds = [f"{k.name} ({k.help})" for k in LABEL_KINDS.values()]
    return "What the segmenter is trained on: " + ", ".join(kinds[:-1]) + f" or {kinds[-1]}."


# ------------------------------------------------------------------------------------------ the built-in kinds
def _objects(mask: Any, part_to_class: list[int]) -> Any:
    from partcli.data.seg_labels import object_masks

    return object_masks(mask, part_to_class)


def _boxes(mask: Any, part_to_class: list[int]) -> Any:
    from partcli.data.seg_labels import box_masks

    return box_masks(mask)


def _centroid_loss(part_to_class: list[int], num_classes: int, norm: str) -> Callable:
    from partcli.train.losses import centroid_loss

    return functools.partial(centroid_loss, part_to_class=part_to_class, num_classes=num_classes, norm=norm)


register_label_kind(LabelKind("part", "the part masks"))
register_label_kind(LabelKind("object", "parts merged per class, App. D.5", channels=class_channels,
                              relabel=_objects,
                              mask_names=class_names))
register_label_kind(LabelKind("box", "tight part boxes, App. D.4", relabel=_boxes))
register_label_kind(LabelKind("centroid", "part centroids only, Eq. 12, Eq. 13, App. D.4", loss=_centroid_loss,
                              pixel_metric=False))
