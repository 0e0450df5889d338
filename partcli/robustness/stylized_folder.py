"""Stylized-ImageNet (Geirhos et al. 2019) as a folder, matched to a prepared split by file stem (paper Table 4).

The folder holds stylized ImageNet images under ImageNet's layout, ``<wnid>/<stem>.<ext>`` or
``{train,val}/<wnid>/<stem>.<ext>`` (ext JPEG, jpg or png), each with the file stem of the ImageNet image it
stylizes (e.g. ``n01440764_10026``). A sample of the split whose image file has a stem found there is evaluated on
its stylized image with its own label: style transfer keeps the content's shape, so the label is the shape's class.
The row's ``clean_acc`` is the accuracy on the same samples' original images, so the two figures compare like with
like.
"""
from __future__ import annotations

import time
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np
import torch

from partcli.data.dataset import PreparedDataset
from partcli.errors import PartcliError
from partcli.robustness.folder_images import (UNREADABLE, accuracy, check_folder, image_files, predict_items,
                                              read_at_size, subfolders)

OPTION = "--stylized"
SPLIT_FOLDERS = ("train", "val")
ROW = "stylized-imagenet"


def index_stylized(root: str | Path) -> tuple[dict[str, Path], int]:
    """File stem → stylized image of the folder ``root`` (the first in path order when a stem repeats), and the
    number of repeated stems; refuse a folder without images in the layout."""
    root = check_folder(root, OPTION)
    class_folders = [folder for top in subfolders(root)
                     for folder in (subfolders(top) if top.name in SPLIT_FOLDERS else [top])]
    index: dict[str, Path] = {}
    repeated = 0
    for folder in class_folders:
        for path in image_files(folder):
            if path.stem in index:
                repeated += 1
            else:
                index[path.stem] = path
    if not index:
        raise PartcliError(f"{OPTION} {root}: no images in <wnid>/<stem>.<ext> or {{train,val}}/<wnid>/<stem>.<ext> "
                           "(ext JPEG, jpg or png); give a Stylized-ImageNet folder")
    return index, repeated


def match_split(ds: PreparedDataset, root: str | Path, data: str | Path) -> tuple[list[tuple[int, Path]], list[str]]:
    """(sample index, stylized file) of every sample of ``ds`` whose image's file stem is in the folder ``root``, in
    split order, and notes; refuse when none is."""
    index, repeated = index_stylized(root)
    matches = [(i, index[stem]) for i, sample in enumerate(ds.samples)
               if (stem := PurePosixPath(sample.image).stem) in index]
    if not matches:
        example = PurePosixPath(ds.samples[0].image).stem
        raise PartcliError(f"{OPTION} {root}: none of its {len(index)} image stems is that of a {ds.split} sample "
                           f"of {data} (e.g. {example!r}); give the Stylized-ImageNet of the dataset's source images")
    notes = []
    if len(matches) < len(ds):
        notes.append(f"{ROW}: {len(ds) - len(matches)} of {len(ds)} {ds.split} samples have no stylized image in "
                     f"{root} and are left out")
    if repeated:
        notes.append(f"{ROW}: {repeated} stems repeat in {root}; the first in path order is used")
    return matches, notes


def stylized_rows(predict: Callable[[np.ndarray], np.ndarray], ds: PreparedDataset,
                  matches: list[tuple[int, Path]], size: int, batch_size: int, root: str | Path
                  ) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``stylized-imagenet`` row (suite ``shape-texture``) of ``predict`` (N×S×S×3 uint8 images → labels) on the
    matched samples, and notes; ``ds`` yields the originals at the model's size."""
    start = time.perf_counter()
    labels = np.array([ds.samples[i].label for i, _ in matches])
    stylized = predict_items(matches, lambda m: read_at_size(m[1], size), predict, batch_size, ROW)
    acc, n = accuracy(stylized, labels)
    if acc is None:
        raise PartcliError(f"{OPTION} {root}: none of the {len(matches)} matched stylized images decodes")
    readable = stylized != UNREADABLE
    kept = [i for (i, _), ok in zip(matches, readable) if ok]
    clean, _ = accuracy(predict_items(kept, lambda i: _original(ds, i), predict, batch_size, f"{ROW} originals"),
                        labels[readable])
    notes = [f"{ROW}: {len(matches) - n} of {len(matches)} stylized images do not decode and are left out"
             ] if n < len(matches) else []
    row = {"suite": "shape-texture", "attack": ROW, "n": n, "adv_acc": acc, "clean_acc": clean, "shape_bias": None,
           "norm": None, "eps": None, "seed": None, "seconds": time.perf_counter() - start}
    return [row], notes



def _original(ds: PreparedDataset, index: int) -> np.ndarray:
    image = ds[index][0]  # float32 3×S×S of k/255 values
    return (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
