"""Class and part names of the datasets the paper authors trained on, in the order of their label ids.

Their code numbers classes alphabetically and parts class after class, within a class in the order its dataset
defines them: for Part-ImageNet the release json's ``categories`` list, for Cityscapes and PASCAL-Part the part
tables that partcli's preparers share with it. These are the orders of ``partcli prepare ... --protocol authors``,
so channel k of an imported segmenter is part k of a prepared dataset of the same kind.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from partcli.data.contract import Part, read_dataset_info
from partcli.errors import PartcliError

# Part-ImageNet's json: its 40 categories ("<Class> <Part>"), grouped by class, each class's in json order.
PART_IMAGENET_PARTS: dict[str, tuple[str, ...]] = {
    "Aeroplane": ("Head", "Body", "Engine", "Wing", "Tail"),
    "Bicycle": ("Body", "Head", "Seat", "Tier"),
    "Biped": ("Head", "Body", "Hand", "Foot", "Tail"),
    "Bird": ("Head", "Body", "Wing", "Foot", "Tail"),
    "Boat": ("Body", "Sail"),
    "Bottle": ("Mouth", "Body"),
    "Car": ("Body", "Tier", "Side Mirror"),
    "Fish": ("Head", "Body", "Fin", "Tail"),
    "Quadruped": ("Head", "Body", "Foot", "Tail"),
    "Reptile": ("Head", "Body", "Foot", "Tail"),
    "Snake": ("Head", "Body"),
}
KNOWN_DATASETS = ("part-imagenet", "cityscapes", "pascal-part")


@dataclass(frozen=True)
class DatasetNames:
    """What a checkpoint's ``config.dataset`` says about its labels; ``origin`` tells where they came from."""

    name: str
    classes: list[str]
    parts: list[Part]
    origin: str

    def part_to_class(self) -> list[int]:
        return [self.classes.index(p.cls) for p in self.parts]


def known_dataset(name: str) -> DatasetNames:
    """The classes and parts of one of ``KNOWN_DATASETS``, as partcli's preparers write them."""
    if name == "part-imagenet":
        classes = sorted(PART_IMAGENET_PARTS)
        parts = [Part(f"{cls}/{part}", cls) for cls in classes for part in PART_IMAGENET_PARTS[cls]]
    elif name == "cityscapes":
        from partcli.data.prepare_cityscapes import CLASSES, PARTS

        classes, parts = list(CLASSES), list(PARTS)
    elif name == "pascal-part":
        from partcli.data.prepare_pascal_part import CLASSES, PARTS

        classes, parts = list(CLASSES), list(PARTS)
    else:
        raise PartcliError(f"--dataset {name!r}: expected one of {', '.join(KNOWN_DATASETS)}")
    return DatasetNames(name, classes, parts, name)


def authors_dataset(name: str) -> str | None:
    """partcli's name for a value of the authors' ``--dataset`` (their Part-ImageNet variants, e.g.
    ``part-imagenet-pseudo``, share its labels); None for any other."""
    if name.startswith("part-imagenet"):
        return "part-imagenet"
    return name if name in KNOWN_DATASETS else None


def dataset_by_counts(num_classes: int, num_parts: int | None) -> DatasetNames | None:
    """The one known dataset with these counts (``num_parts`` None: any), if exactly one has them."""
    found = [d for d in map(known_dataset, KNOWN_DATASETS)
             if len(d.classes) == num_classes and num_parts in (None, len(d.parts))]
    return found[0] if len(found) == 1 else None


def prepared_dataset(path: str | Path) -> DatasetNames:
    """The classes and parts of a prepared dataset (``--data``)."""
    info = read_dataset_info(path)
    return DatasetNames(info.name, list(info.classes), list(info.parts), f"--data {path}")
