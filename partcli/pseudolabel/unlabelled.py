"""``--unlabelled DIR``: extra training images with a class label and no part mask (Table 15's 40K setting).

Format: a folder holding ``labels.csv`` with a header row and two columns, ``image`` (a path relative to the
folder; PNG or JPEG) and ``label`` (a class name, spelled as in the parent dataset's ``dataset.yaml``)::

    image,label
    n01440764/n01440764_10026.JPEG,Fish
"""
from __future__ import annotations

import csv
from pathlib import Path

from partcli.data.contract import Sample
from partcli.errors import PartcliError

LABELS_FILE = "labels.csv"


def read_unlabelled(root: str | Path, classes: list[str]) -> list[Sample]:
    """Read and check ``root/labels.csv`` against the parent's ``classes``; rows come back without masks."""
    path = Path(root) / LABELS_FILE
    if not path.is_file():
        raise PartcliError(f"--unlabelled {root}: {path} missing; it must list image,label (a class name) per row")
    index = {name: i for i, name in enumerate(classes)}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"image", "label"} - set(reader.fieldnames or [])
        if missing:
            raise PartcliError(f"{path}: missing column(s) {', '.join(sorted(missing))}; expected image,label")
        samples = []
        for lineno, row in enumerate(reader, start=2):
            image, label = (row["image"] or "").strip(), (row["label"] or "").strip()
            if label not in index:
                raise PartcliError(f"{path}:{lineno}: class {label!r} is not one of the dataset's classes "
                                   f"({', '.join(classes)})")
            if not (Path(root) / image).is_file():
                raise PartcliError(f"{path}:{lineno}: image {Path(root) / image} not found")
            samples.append(Sample(image, "", index[label]))
    if not samples:
        raise PartcliError(f"{path}: lists no image")
    return samples
