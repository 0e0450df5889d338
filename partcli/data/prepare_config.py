"""The options of ``partcli prepare ...``, one definition each (``partcli.options``).

The preparers (``prepare_synthetic``, ``prepare_part_imagenet``...) keep their own checks for Python callers;
the ranges declared here refuse a bad command-line or ``--config`` value before a preparer is imported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from partcli.options import DATA, RUN, RUNTIME, Choice, option, seed_option


class OverlapProtocol(Choice):
    """Where part annotations overlap: the paper authors' data rules, or partcli's earlier ones."""

    AUTHORS = "authors"
    LARGEST_FIRST = "largest-first"


class CityscapesProtocol(Choice):
    """Which objects and crops: the paper authors' data script, or the paper's App. A text."""

    AUTHORS = "authors"
    TEXT = "text"


# ----------------------------------------------------------------------------------------- shared options
def out_option() -> Any:
    return option("", "Output folder (must not exist or be empty).", panel=RUN, path=True)


def overwrite_option() -> Any:
    return option(False, "Replace the prepared dataset in a non-empty --out (a folder that holds other files is "
                  "refused, not emptied).", panel=RUN, flags="--overwrite")


def prepare_seed_option() -> Any:
    return seed_option("Seed for every random choice (0 to 2^32 − 1); same seed, same result.")


def src_option() -> Any:
    return option("", "Folder holding the official download.", panel=DATA, path=True)


def strict_option() -> Any:
    return option(False, "Stop at the first undecodable image instead of skipping it.", panel=DATA, flags="--strict")


# ----------------------------------------------------------------------------------------- one per command
@dataclass
class SyntheticConfig:
    """Options of ``partcli prepare synthetic``."""

    out: str = out_option()
    n: int = option(3000, "Number of images (at most 1,000,000).", panel=DATA)
    image_size: int = option(64, "Side of the square images in pixels (16 to 2048).", panel=DATA)
    n_val: int | None = option(None, "Validation images, the same number per class (a multiple of 5); default 10 % "
                               "of --n.", panel=DATA)
    n_test: int | None = option(None, "Test images, the same number per class (a multiple of 5); default 10 % of "
                                "--n. The rest is train.", panel=DATA)
    seed: int = prepare_seed_option()
    overwrite: bool = overwrite_option()


@dataclass
class PartImagenetConfig:
    """Options of ``partcli prepare part-imagenet``."""

    src: str = src_option()
    out: str = out_option()
    seed: int = prepare_seed_option()
    strict: bool = strict_option()
    overwrite: bool = overwrite_option()
    protocol: str = option("authors", "Where the release is ambiguous. authors: as the paper's data (annotations "
                           "painted in json order, later over earlier; those of json area 0 skipped; an image with "
                           "parts of several classes gives one sample per class; parts in the json's category "
                           "order). largest-first: partcli's earlier rule (largest annotation painted first; a mixed "
                           "image labelled with its largest-area class only; parts by category id).", panel=DATA,
                           choices=OverlapProtocol)


@dataclass
class CityscapesConfig:
    """Options of ``partcli prepare cityscapes``."""

    src: str = src_option()
    out: str = out_option()
    protocol: str = option("authors", "Which objects and crops. authors: as the paper's data (29,728 samples on the "
                           "full release): instance 0 of a category skipped, a crowd is one object, occluded when one "
                           "category of the other class covers over half as many box pixels as the object's "
                           "category, square crop shifted at random, mask with every human's and vehicle's parts. "
                           "text: as the paper's App. A describes it: every instance, centred square, only the "
                           "instance's parts.", panel=DATA, choices=CityscapesProtocol)
    min_area: int = option(1000, "Skip objects with fewer pixels.", panel=DATA, low=0)
    pad: float | None = option(None, "Crop padding as a fraction of the object's side. authors: int(pad*side) on "
                               "each side and a random shift of up to 2*pad of the crop; text: 0 to pad extra, "
                               "centred.", panel=DATA, shown="0.2 with authors, 0.1 with text", low=0)
    seed: int = prepare_seed_option()
    workers: int | None = option(None, "Processes cropping the images.", panel=RUNTIME, shown="all cores", low=1)
    strict: bool = strict_option()
    overwrite: bool = overwrite_option()


@dataclass
class PascalPartConfig:
    """Options of ``partcli prepare pascal-part``."""

    src: str = src_option()
    out: str = out_option()
    seed: int = prepare_seed_option()
    strict: bool = strict_option()
    overwrite: bool = overwrite_option()
    protocol: str = option("authors", "Which part keeps a pixel where parts overlap. authors: as the paper's data "
                           "(the largest object's parts first, then the other objects' in annotation order; within "
                           "an object tail > wing > body, head > legs > body, wheel > window > body; the first part "
                           "on a pixel keeps it; part names in no group stay background). largest-first: partcli's "
                           "earlier rule (objects largest first, parts in annotation order, each over the earlier "
                           "ones; unknown part names become body).", panel=DATA, choices=OverlapProtocol)
