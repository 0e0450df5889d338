"""The segmenter's training data: the parent dataset cut down to the training samples that keep their mask.

With ``--frac f`` only that fraction of the training split carries a segmentation loss (c_seg = 1), so the
segmenter trains on those samples alone: about 1/f times fewer steps per epoch (10× at ``--frac 0.1``) than
training on the whole split, where the other samples would only be read, augmented and passed forward for a
zero loss. The subset is a prepared dataset of CSVs and ``dataset.yaml`` only: its rows reach the parent's
images and masks with relative (``../``) paths; val and test are the parent's.

Its name carries a digest of what it holds (the parent's name and the kept rows), and a checkpoint records its
dataset's name, so a finished segmenter run can be recognised wherever the subset folder was.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import yaml

from partcli.data.contract import CSV_COLUMNS, INTERNAL, SPLITS, DatasetInfo, Sample
from partcli.errors import writing

SUBSET_SUFFIX = ".segmenter-data"  # <out>.segmenter-data: the subset's folder beside --out


def subset_dir_for(out: Path) -> Path:
    """Where the subset lives while the segmenter trains: ``<out>.segmenter-data`` beside ``out``."""
    return out.parent / f"{out.name}{SUBSET_SUFFIX}"


def subset_name(parent: DatasetInfo, kept: list[Sample]) -> str:
    """``<parent name>-labelled-<digest of the kept rows>``."""
    rows = [(s.image, s.mask, s.label) for s in kept]
    digest = hashlib.sha1(json.dumps([parent.name, rows]).encode()).hexdigest()[:12]
    return f"{parent.name}-labelled-{digest}"


def write_labelled_subset(parent: Path, info: DatasetInfo, splits: dict[str, list[Sample]], kept: list[Sample],
                          dest: Path, source: dict) -> str:
    """Write the subset at ``dest`` (replacing an earlier one): train = ``kept``, val/test = the parent's
    ``splits``; return its name."""
    name = subset_name(info, kept)
    rows = {"train": kept, **{s: splits[s] for s in SPLITS if s != "train"}}
    with writing(dest):
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        base = Path(os.path.relpath(parent.resolve(), dest.resolve()))
        counts = {}
        for split, samples in rows.items():
            with (dest / f"{split}.csv").open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(CSV_COLUMNS)
                for s in samples:
                    writer.writerow([(base / s.image).as_posix(), (base / s.mask).as_posix() if s.mask else "",
                                     s.label, s.mask_source])
            counts[split] = {c: sum(s.label == i for s in samples) for i, c in enumerate(info.classes)}
        subset = DatasetInfo(name=name, classes=info.classes, parts=info.parts, source=source, counts=counts,
                             extra={INTERNAL: _internal_note(dest)})
        (dest / "dataset.yaml").write_text(yaml.safe_dump(subset.to_yaml_dict(), sort_keys=False))
    return name


def _internal_note(dest: Path) -> str:
    out = dest.parent / dest.name.removesuffix(SUBSET_SUFFIX)
    return (f"the training subset of `partcli pseudolabel --out {out}`, removed when that run finishes (rerun it to "
            "finish, or delete this folder)")
