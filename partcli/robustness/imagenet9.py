"""The ImageNet-9 Backgrounds Challenge (Xiao et al. 2021) as released: the paper's own Table 3 sets.

Layout of the release folder: ``<variant>/val/<NN_class>/<image>`` for any of the variants in ``VARIANTS``, with
the nine class folders of ``CLASSES`` (sorted, their order is the IN-9 class index), and optionally boolean
foreground masks ``fg_mask/val/<NN_class>/<image stem>.npy``.

Classes: the paper keeps the IN-9 classes that Part-ImageNet also has (``PAPER_CLASSES``: dog → Quadruped, bird →
Bird, reptile → Reptile, fish → Fish), matched to the prepared dataset's class names ignoring case; the other five
IN-9 classes are not evaluated.

Rows (suite ``foreground``): ``in9/<variant>`` (``_`` written ``-``) is the accuracy on a variant's mapped images,
``in9/bg-gap`` Mixed-Same − Mixed-Rand, and ``in9/spurious`` the paper's Table 3 set: every Only-FG image's
foreground on the Only-BG-T image of a random other class (a class drawn uniformly among the other mapped classes
that have Only-BG-T images, then one of its images, from a generator seeded with ``(seed, Only-FG image index)``).
The foreground is the image's ``fg_mask`` when there is one (resized to the image, nearest), else its non-black
pixels (any channel > 0); the background is resized (bilinear) to the foreground image's size.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from partcli.errors import PartcliError
from partcli.robustness.folder_images import (accuracy, at_model_size, check_folder, image_files, predict_items,
                                              read_at_size, read_rgb, subfolders)

OPTION = "--imagenet9"
VARIANTS: tuple[str, ...] = ("original", "only_fg", "only_bg_b", "only_bg_t", "no_fg", "mixed_same", "mixed_rand",
                             "mixed_next")
CLASSES: tuple[str, ...] = ("00_dog", "01_bird", "02_wheeled vehicle", "03_reptile", "04_carnivore", "05_insect",
                            "06_musical instrument", "07_primate", "08_fish")
PAPER_CLASSES: dict[str, str] = {"00_dog": "Quadruped", "01_bird": "Bird", "03_reptile": "Reptile", "08_fish": "Fish"}
CLASS_FOLDER = re.compile(r"\d\d_.+")  # an IN-9 class folder: two digits, underscore, name
MASK_FOLDER = Path("fg_mask") / "val"

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass
class ImageNet9:
    """The mapped images of a release: variant → [(image file, dataset class index)], class folder then name order."""

    root: Path
    images: dict[str, list[tuple[Path, int]]]

    def mask_file(self, image: Path) -> Path:
        return self.root / MASK_FOLDER / image.parent.name / f"{image.stem}.npy"


def row_name(variant: str) -> str:
    return f"in9/{variant.replace('_', '-')}"


def map_classes(dataset_classes: Sequence[str]) -> dict[str, int]:
    """IN-9 class folder → dataset class index, for those of the paper's four classes the dataset has (any case)."""
    index = {name.lower(): i for i, name in enumerate(dataset_classes)}
    return {folder: index[name.lower()] for folder, name in PAPER_CLASSES.items() if name.lower() in index}


def scan_release(root: str | Path) -> dict[str, list[tuple[str, Path]]]:
    """Variant → [(class folder, image file)] of a release folder; refuse one without any such image."""
    root = check_folder(root, OPTION)
    found = {}
    for variant in VARIANTS:
        val = root / variant / "val"
        if val.is_dir():
            files = [(folder.name, f) for folder in subfolders(val) if CLASS_FOLDER.fullmatch(folder.name)
                     for f in image_files(folder)]
            if files:
                found[variant] = files
    if not found:
        raise PartcliError(f"{OPTION} {root}: no images in <variant>/val/<NN_class>/ for any variant of "
                           f"{', '.join(VARIANTS)}; give the Backgrounds Challenge release folder")
    return found


def load_imagenet9(root: str | Path, dataset_classes: Sequence[str], data: str | Path
                   ) -> tuple[ImageNet9, list[str]]:
    """The release at ``root`` mapped onto the classes of the prepared dataset ``data``, and notes on the mapping;
    refuse one whose images do not map onto the dataset."""
    found = scan_release(root)
    mapping = map_classes(dataset_classes)
    wanted = ", ".join(PAPER_CLASSES.values())
    if not mapping:
        raise PartcliError(f"{OPTION} {root}: {data} has none of the classes {wanted} (IN-9's dog, bird, reptile "
                           "and fish map onto them, as in the paper); use a dataset with them, e.g. Part-ImageNet")
    images = {variant: [(f, mapping[folder]) for folder, f in files if folder in mapping]
              for variant, files in found.items()}
    images = {variant: files for variant, files in images.items() if files}
    if not images:
        present = sorted({folder for files in found.values() for folder, _ in files})
        raise PartcliError(f"{OPTION} {root}: no images in the class folders that map onto {data} "
                           f"({', '.join(sorted(mapping))}); it holds {', '.join(present)}")
    notes = [f"{OPTION}: IN-9 " + ", ".join(f"{folder} → {dataset_classes[label]}" for folder, label in
                                            mapping.items()) + "; the other IN-9 classes are not evaluated"]
    missing = [name for folder, name in PAPER_CLASSES.items() if folder not in mapping]
    if missing:
        notes.append(f"{OPTION}: {data} has no class {', '.join(missing)}: IN-9's "
                     f"{', '.join(f for f in PAPER_CLASSES if f not in mapping)} images are not evaluated either")
    return ImageNet9(Path(root), images), notes


def spurious_pairs(fg_labels: np.ndarray, bg_labels: np.ndarray, seed: int) -> np.ndarray:
    """For every Only-FG image (classes ``fg_labels``), the index of an Only-BG-T image (classes ``bg_labels``, at
    least two) of a random other class: the class uniformly among the others, then an image of it uniformly."""
    classes = np.unique(bg_labels)
    members = {c: np.flatnonzero(bg_labels == c) for c in classes}
    pairs = np.empty(len(fg_labels), dtype=np.int64)
    for i, label in enumerate(fg_labels):
        rng = np.random.default_rng([seed, i])
        pairs[i] = rng.choice(members[rng.choice(classes[classes != label])])
    return pairs


def foreground_pixels(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Boolean H×W foreground of an Only-FG ``image``: ``mask`` != 0 (a channel axis, the last when it has at most
    4 entries else the first, reduced by any; resized to the image, nearest) when given, else the image's
    non-black pixels."""
    if mask is None:
        return (image > 0).any(-1)
    mask = np.squeeze(mask) != 0
    if mask.ndim == 3:  # H×W×C (C ≤ 4) or C×H×W
        mask = mask.any(-1 if mask.shape[-1] <= 4 else 0)
    height, width = image.shape[:2]
    if mask.shape != (height, width):
        mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))
    return mask


def composite(foreground: np.ndarray, pixels: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``foreground`` where the boolean ``pixels`` are set, elsewhere ``background`` resized (bilinear) to its size."""
    height, width = pixels.shape
    if background.shape[:2] != (height, width):
        background = np.asarray(Image.fromarray(background).resize((width, height), Image.BILINEAR))
    return np.where(pixels[..., None], foreground, background)


def read_mask(path: Path) -> np.ndarray | None:
    """A foreground mask .npy file; None when it does not load or is neither H×W nor H×W with a channel axis."""
    try:
        mask = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return mask if np.squeeze(mask).ndim in (2, 3) else None


def imagenet9_rows(predict: Predict, in9: ImageNet9, size: int, seed: int, batch_size: int
                   ) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``in9/*`` rows (suite ``foreground``) of ``predict`` (N×S×S×3 uint8 images → labels), and notes."""
    rows, notes, acc = [], [], {}
    for variant, files in in9.images.items():
        start = time.perf_counter()
        pred = predict_items(files, lambda item: read_at_size(item[0], size), predict, batch_size,
                             row_name(variant))
        acc[variant], n = accuracy(pred, np.array([label for _, label in files]))
        if acc[variant] is None:
            raise PartcliError(f"{OPTION} {in9.root}: none of the {len(files)} mapped {variant} images decodes")
        _note_unreadable(notes, row_name(variant), len(files) - n, len(files))
        rows.append({"attack": row_name(variant), "n": n, "adv_acc": acc[variant],
                     "seconds": time.perf_counter() - start})
    spurious = _spurious_row(predict, in9, size, seed, batch_size, notes)
    rows += [spurious] if spurious else []
    if "mixed_same" in acc and "mixed_rand" in acc:
        same, rand = (next(r for r in rows if r["attack"] == row_name(v)) for v in ("mixed_same", "mixed_rand"))
        rows.append({"attack": "in9/bg-gap", "n": min(same["n"], rand["n"]),
                     "bg_gap": acc["mixed_same"] - acc["mixed_rand"], "seconds": 0.0})
    clean = acc.get("original")
    rows = [{"suite": "foreground", "norm": None, "eps": None, "seed": None, "clean_acc": clean, **row}
            for row in rows]
    return rows, notes


def _spurious_row(predict: Predict, in9: ImageNet9, size: int, seed: int, batch_size: int,
                  notes: list[str]) -> dict[str, Any] | None:
    """The ``in9/spurious`` row, or None (with a note) when the release lacks what it is made of."""
    lacking = [v for v in ("only_fg", "only_bg_t") if v not in in9.images]
    if lacking:
        notes.append(f"in9/spurious not made: {in9.root} has no mapped {' or '.join(lacking)} images")
        return None
    fgs, bgs = in9.images["only_fg"], in9.images["only_bg_t"]
    bg_labels = np.array([label for _, label in bgs])
    if len(np.unique(bg_labels)) < 2:
        notes.append(f"in9/spurious not made: the mapped only_bg_t images of {in9.root} are of one class; the "
                     "foregrounds need backgrounds of another class")
        return None
    start = time.perf_counter()
    fg_labels = np.array([label for _, label in fgs])
    pairs = spurious_pairs(fg_labels, bg_labels, seed)
    masked = sum(in9.mask_file(f).is_file() for f, _ in fgs)

    def load(i: int) -> np.ndarray | None:
        fg_file, bg_file = fgs[i][0], bgs[pairs[i]][0]
        mask_file = in9.mask_file(fg_file)
        has_mask = mask_file.is_file()
        mask = read_mask(mask_file) if has_mask else None
        foreground, background = read_rgb(fg_file), read_rgb(bg_file)
        if foreground is None or background is None or (has_mask and mask is None):
            return None
        return at_model_size(composite(foreground, foreground_pixels(foreground, mask), background), size)

    acc, n = accuracy(predict_items(range(len(fgs)), load, predict, batch_size, "in9/spurious"), fg_labels)
    if acc is None:
        raise PartcliError(f"{OPTION} {in9.root}: none of the {len(fgs)} spurious composites could be made (their "
                           "only_fg, only_bg_t or fg_mask files do not decode)")
    _note_unreadable(notes, "in9/spurious", len(fgs) - n, len(fgs))
    notes.append(f"in9/spurious: foregrounds of {masked} of {len(fgs)} images from {MASK_FOLDER}, the others' "
                 "from their non-black pixels")
    return {"attack": "in9/spurious", "n": n, "adv_acc": acc, "seed": seed, "seconds": time.perf_counter() - start}



def _note_unreadable(notes: list[str], name: str, unreadable: int, total: int) -> None:
    if unreadable:
        notes.append(f"{name}: {unreadable} of {total} images do not decode and are left out")
