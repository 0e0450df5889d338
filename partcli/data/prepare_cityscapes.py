"""``partcli prepare cityscapes``: human-vs-vehicle crops from Cityscapes-Panoptic-Parts (paper §3.5.1, App. A).

Every person/rider (class "human") and car/truck/bus (class "vehicle") instance of at least ``min_area``
pixels becomes one sample: a square crop around its bounding box with 0–``pad`` extra random padding, and
a mask holding only that instance's part labels. Train and val images are pooled and re-split 80/10/10 per
class. Images are processed in parallel; each worker writes its crops into a staging folder inside the
writer's temporary folder, and the main process files them under their split once all labels are known.
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import zlib
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np
from PIL import Image

from partcli.data.contract import DatasetInfo, DatasetWriter, Part, stratified_split
from partcli.data.panoptic_ids import decode_uids
from partcli.errors import PartcliError
from partcli.progress import track, warn

CLASSES = ["human", "vehicle"]
CLASS_SIDS = {0: (24, 25), 1: (26, 27, 28)}  # person, rider | car, truck, bus
CLASS_PARTS = {
    0: ["torso", "head", "arms", "legs"],  # Cityscapes-Panoptic-Parts pids 1..4
    1: ["windows", "wheels", "lights", "license plate", "chassis"],  # pids 1..5
}
PARTS = [Part(name, CLASSES[c]) for c, names in CLASS_PARTS.items() for name in names]
IMAGE_DIR, LABEL_DIR = "leftImg8bit", "gtFinePanopticParts"
IMAGE_SUFFIX, LABEL_SUFFIX = "_leftImg8bit.png", "_gtFinePanopticParts.tif"
SOURCE_SPLITS = ("train", "val")
SKIP_REASONS = ("missing_image", "undecodable_image", "undecodable_annotation", "small", "occluded")

T = TypeVar("T")
R = TypeVar("R")


def _class_of_sid() -> np.ndarray:
    """Class index of every sid 0..99 (-1: neither human nor vehicle)."""
    table = np.full(100, -1, dtype=np.int8)
    for label, sids in CLASS_SIDS.items():
        table[list(sids)] = label
    return table


def _part_ids() -> dict[int, np.ndarray]:
    """Per class, the part id (1..K) of every pid 0..99; 0 for void (pid 0) and unknown pids."""
    tables, offset = {}, 0
    for label, names in CLASS_PARTS.items():
        table = np.zeros(100, dtype=np.uint8)
        table[1 : len(names) + 1] = np.arange(offset + 1, offset + len(names) + 1)
        tables[label] = table
        offset += len(names)
    return tables


CLASS_OF_SID = _class_of_sid()
PART_IDS = _part_ids()


@dataclass(frozen=True)
class ImagePair:
    """One annotated image; ``stem`` is ``<city>/<image name without suffix>``."""

    image: Path
    annotation: Path
    stem: str


@dataclass(frozen=True)
class Crop:
    """One sample a worker wrote into the staging folder (``images/<stem>.png``, ``masks/<stem>.png``)."""

    stem: str
    label: int


@dataclass
class ImageResult:
    """What a worker made of one image: its crops, its skip counts, or why it skipped the whole image."""

    crops: list[Crop] = field(default_factory=list)
    small: int = 0
    occluded: int = 0
    error: str = ""  # "undecodable_image" or "undecodable_annotation"
    message: str = ""


def prepare_cityscapes(
    src: Path,
    out: Path,
    *,
    min_area: int = 1000,
    pad: float = 0.1,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    strict: bool = False,
) -> DatasetInfo:
    """Build the Cityscapes human-vs-vehicle prepared dataset from the official folders under ``src``.

    ``src`` holds ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` and
    ``gtFinePanopticParts/{train,val}/<city>/*_gtFinePanopticParts.tif``. Instances smaller than
    ``min_area`` pixels, or whose crop holds more pixels of the other class than half their area, are
    skipped. An image that does not decode is skipped with a warning, or refused when ``strict``.
    ``workers`` processes (default: all CPUs) crop the images; the result does not depend on it.
    """
    src, out = Path(src), Path(out)
    _check_options(min_area, pad, seed, workers)
    workers = workers or os.cpu_count() or 1
    pairs, missing = find_pairs(src)
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    skipped["missing_image"] = len(missing)
    if missing:
        warn(f"{len(missing)} annotation(s) have no matching image under {src / IMAGE_DIR} "
             f"(e.g. {missing[0]}); skipped")
    with DatasetWriter(out, CLASSES, PARTS, name="cityscapes", overwrite=overwrite) as writer:
        assert writer.tmp is not None
        staging = writer.tmp / "staging"
        crop = partial(crop_instances, staging=staging, min_area=min_area, pad=pad, seed=seed)
        crops: list[Crop] = []
        with _parallel_map(crop, pairs, workers) as results:
            for result in track(results, "cropping Cityscapes instances", total=len(pairs)):
                if result.error:
                    if strict:
                        raise PartcliError(f"{result.message}; fix or remove it, or drop --strict to skip it")
                    warn(f"{result.message}; skipped")
                    skipped[result.error] += 1
                    continue
                crops.extend(result.crops)
                skipped["small"] += result.small
                skipped["occluded"] += result.occluded
        if not crops:
            raise PartcliError(
                f"{src}: no human or vehicle instance with at least --min-area {min_area} pixels survived "
                f"the filters (skipped: {skipped}); check the folder or lower --min-area"
            )
        splits = stratified_split([c.label for c in crops], seed)
        for c, split in zip(track(crops, "writing samples"), splits, strict=True):
            image_rel = f"images/{split}/{c.stem}.png"
            (writer.tmp / image_rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / "images" / f"{c.stem}.png", writer.tmp / image_rel)
            with Image.open(staging / "masks" / f"{c.stem}.png") as im:
                mask = np.array(im)
            writer.add(split, c.stem, c.label, image_rel=image_rel, mask=mask)
        shutil.rmtree(staging)
        source = {
            "command": "prepare cityscapes",
            "src": str(src.resolve()),
            "min_area": min_area,
            "pad": pad,
            "seed": seed,
            "skipped": skipped,
        }
        return writer.finish(source=source)


def _check_options(min_area: int, pad: float, seed: int, workers: int | None) -> None:
    if min_area < 0:
        raise PartcliError(f"--min-area {min_area}: expected a number of pixels >= 0")
    if not pad >= 0:  # also refuses NaN
        raise PartcliError(f"--pad {pad}: expected a fraction >= 0 (e.g. 0.1 for up to 10% extra)")
    if seed < 0:
        raise PartcliError(f"--seed {seed}: expected an integer >= 0")
    if workers is not None and workers < 1:
        raise PartcliError(f"--workers {workers}: expected at least 1")


def find_pairs(src: Path) -> tuple[list[ImagePair], list[Path]]:
    """List the annotated images under ``src`` sorted by path, and the annotations whose image is missing."""
    if not src.is_dir():
        raise PartcliError(f"{src}: not a folder; expected the Cityscapes root holding {IMAGE_DIR}/ and {LABEL_DIR}/")
    for sub in (IMAGE_DIR, LABEL_DIR):
        if not (src / sub).is_dir():
            raise PartcliError(
                f"{src / sub}: missing; expected the Cityscapes root holding {IMAGE_DIR}/ and {LABEL_DIR}/ "
                f"(the latter from Cityscapes-Panoptic-Parts)"
            )
    pairs, missing, seen = [], [], set()
    for split in SOURCE_SPLITS:
        for ann in sorted((src / LABEL_DIR / split).glob(f"*/*{LABEL_SUFFIX}")):
            city, name = ann.parent.name, ann.name[: -len(LABEL_SUFFIX)]
            image = src / IMAGE_DIR / split / city / f"{name}{IMAGE_SUFFIX}"
            if not image.is_file():
                missing.append(ann)
                continue
            stem = f"{city}/{name}"
            if stem in seen:
                raise PartcliError(f"{ann}: image name {name} appears in more than one of {', '.join(SOURCE_SPLITS)}")
            seen.add(stem)
            pairs.append(ImagePair(image, ann, stem))
    if not pairs and not missing:
        raise PartcliError(
            f"{src / LABEL_DIR}: no */*{LABEL_SUFFIX} files under {' or '.join(SOURCE_SPLITS)}/; "
            f"expected the Cityscapes-Panoptic-Parts annotations"
        )
    return pairs, missing


@contextmanager
def _parallel_map(fn: Callable[[T], R], items: list[T], workers: int) -> Iterator[Iterable[R]]:
    """``map(fn, items)`` in order, in ``workers`` processes (in this process when 1).

    On an error in the caller's loop the queued items are cancelled instead of being processed to the end.
    """
    if workers == 1 or len(items) <= 1:
        yield map(fn, items)
        return
    # forkserver: forking a process that runs threads (e.g. the progress bar's) can deadlock the child.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver") if "forkserver" in methods else None
    pool = ProcessPoolExecutor(min(workers, len(items)), mp_context=context)
    try:
        yield pool.map(fn, items)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def crop_instances(pair: ImagePair, *, staging: Path, min_area: int, pad: float, seed: int) -> ImageResult:
    """Crop every human/vehicle instance of one image into ``staging``; runs in a worker process.

    The padding of an instance is drawn from an RNG seeded by (seed, image, instance), so the crops do not
    depend on the order in which the workers process the images.
    """
    try:
        with Image.open(pair.image) as im:
            image = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:
        why = exc.__class__.__name__
        return ImageResult(error="undecodable_image", message=f"{pair.image}: image does not decode ({why})")
    try:
        with Image.open(pair.annotation) as im:
            uids = np.array(im)
        if uids.shape != image.shape[:2]:
            raise ValueError(f"size {uids.shape[::-1]} differs from its image's {image.shape[1::-1]}")
        sids, iids, pids = decode_uids(uids)
    except (OSError, SyntaxError, ValueError) as exc:
        why = str(exc) if isinstance(exc, ValueError) else exc.__class__.__name__
        message = f"{pair.annotation}: not a panoptic-parts label map ({why})"
        return ImageResult(error="undecodable_annotation", message=message)

    result = ImageResult()
    image_key = zlib.crc32(pair.stem.encode())
    for sid, iid, area, box in _instances(sids, iids):
        if area < min_area:
            result.small += 1
            continue
        label = int(CLASS_OF_SID[sid])
        rng = np.random.default_rng([seed, image_key, sid, iid])
        top, left, size = square_box(box, float(rng.uniform(0.0, pad)))
        sids_c, iids_c, pids_c = (crop_padded(a, top, left, size) for a in (sids, iids, pids))
        if np.count_nonzero(CLASS_OF_SID[sids_c] == 1 - label) > area / 2:
            result.occluded += 1
            continue
        own = (sids_c == sid) & (iids_c == iid)
        mask = np.where(own, PART_IDS[label][np.clip(pids_c, 0, 99)], 0).astype(np.uint8)
        stem = f"{pair.stem}_{sid}_{iid:03d}"
        for kind, array in (("images", crop_padded(image, top, left, size)), ("masks", mask)):
            path = staging / kind / f"{stem}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(path, format="PNG")
        result.crops.append(Crop(stem, label))
    return result


def _instances(sids: np.ndarray, iids: np.ndarray) -> Iterator[tuple[int, int, int, tuple[int, int, int, int]]]:
    """``(sid, iid, area, (y0, x0, y1, x1))`` of every human/vehicle instance, by (sid, iid); box inclusive.

    Cityscapes numbers instances from 0, so iid 0 is an instance; pixels with only a semantic label (groups
    of people or cars, uid < 100) have iid -1 and belong to no instance.
    """
    ys, xs = np.nonzero((CLASS_OF_SID[sids] >= 0) & (iids >= 0))
    keys = sids[ys, xs].astype(np.int64) * 1000 + iids[ys, xs]
    order = np.argsort(keys, kind="stable")
    keys, ys, xs = keys[order], ys[order], xs[order]
    uniq, starts, counts = np.unique(keys, return_index=True, return_counts=True)
    for key, start, count in zip(uniq.tolist(), starts.tolist(), counts.tolist(), strict=True):
        y, x = ys[start : start + count], xs[start : start + count]
        yield key // 1000, key % 1000, count, (int(y.min()), int(x.min()), int(y.max()), int(x.max()))


def square_box(box: tuple[int, int, int, int], extra: float) -> tuple[int, int, int]:
    """``(top, left, side)`` of the square centred on ``box`` (inclusive y0, x0, y1, x1).

    Its side is the box's longer side enlarged by the fraction ``extra``; it always contains the box.
    """
    y0, x0, y1, x1 = box
    height, width = y1 - y0 + 1, x1 - x0 + 1
    side = max(height, width)
    size = max(side, int(round(side * (1.0 + extra))))
    return y0 + (height - size) // 2, x0 + (width - size) // 2, size


def crop_padded(array: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """The ``size``×``size`` window at (top, left) of ``array``, zero where it leaves the array."""
    out = np.zeros((size, size) + array.shape[2:], dtype=array.dtype)
    height, width = array.shape[:2]
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + size, height), min(left + size, width)
    if y0 < y1 and x0 < x1:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = array[y0:y1, x0:x1]
    return out
