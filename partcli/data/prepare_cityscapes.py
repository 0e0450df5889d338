"""``partcli prepare cityscapes``: human-vs-vehicle crops from Cityscapes-Panoptic-Parts (paper §3.5.1, App. A).

Every person/rider (class "human") and car/truck/bus (class "vehicle") object that passes the protocol's
filters becomes one sample: a crop around it and its part mask (``partcli.data.cityscapes_crops`` says which
objects and which crops, for the ``authors`` and ``text`` protocols). Train and val images are pooled and
re-split 80/10/10 per class. Images are processed in parallel; each worker writes its crops and their masks
(PNG, each encoded once) into a staging folder inside the writer's temporary folder; when all labels are known the
main process moves them under their split.
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

from partcli.data.cityscapes_crops import CLASS_PARTS, DEFAULT_PAD, PROTOCOLS, Candidate, plan_crops
from partcli.data.contract import DatasetInfo, Part
from partcli.data.splits import stratified_split
from partcli.data.writer import DatasetWriter
from partcli.errors import PartcliError
from partcli.progress import track, warn

CLASSES = ["human", "vehicle"]
PARTS = [Part(name, CLASSES[c]) for c, names in CLASS_PARTS.items() for name in names]
IMAGE_DIR, LABEL_DIR = "leftImg8bit", "gtFinePanopticParts"
IMAGE_SUFFIX, LABEL_SUFFIX = "_leftImg8bit.png", "_gtFinePanopticParts.tif"
SOURCE_SPLITS = ("train", "val")
SKIP_REASONS = ("missing_image", "undecodable_image", "undecodable_annotation", "first_instance", "small",
                "occluded")
# zlib's run-length strategy after PNG's row filters: on photos about as small as PIL's default (level 6) and
# about four times faster to write; the crops are the bulk of the work.
CROP_PNG = {"compress_level": 1, "compress_type": zlib.Z_RLE}

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class ImagePair:
    """One annotated image; ``stem`` is ``<city>/<image name without suffix>``."""

    image: Path
    annotation: Path
    stem: str


@dataclass(frozen=True)
class Crop:
    """One sample: a worker wrote its image and mask to ``images/<stem>.png`` and ``masks/<stem>.png`` in the
    staging folder."""

    stem: str
    label: int


@dataclass
class ImageResult:
    """What a worker made of one image: its crops, its skip counts, or why it skipped the image."""

    crops: list[Crop] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # first_instance, small, occluded
    error: str = ""  # "undecodable_image" or "undecodable_annotation"
    message: str = ""


def prepare_cityscapes(
    src: Path,
    out: Path,
    *,
    protocol: str = "authors",
    min_area: int = 1000,
    pad: float | None = None,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    strict: bool = False,
) -> DatasetInfo:
    """Build the Cityscapes human-vs-vehicle prepared dataset from the official folders under ``src``.

    ``src`` holds ``leftImg8bit/{train,val}/<city>/*_leftImg8bit.png`` and
    ``gtFinePanopticParts/{train,val}/<city>/*_gtFinePanopticParts.tif``. ``protocol`` "authors" reproduces the
    paper authors' data script, "text" the paper's description (see ``partcli.data.cityscapes_crops``);
    ``pad`` defaults to 0.2 and 0.1 respectively. Objects smaller than ``min_area`` pixels are skipped. An
    image that does not decode is skipped with a warning, or refused when ``strict``. ``workers`` processes
    (default: all CPUs) crop the images; the result does not depend on it.
    """
    src, out = Path(src), Path(out)
    _check_options(protocol, min_area, pad, seed, workers)
    pad = DEFAULT_PAD[protocol] if pad is None else pad
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
        crop = partial(crop_objects, staging=staging, protocol=protocol, min_area=min_area, pad=pad, seed=seed)
        crops: list[Crop] = []
        with _parallel_map(crop, pairs, workers) as results:
            for result in track(results, "cropping Cityscapes objects", total=len(pairs)):
                if result.error:
                    if strict:
                        raise PartcliError(f"{result.message}; fix or remove it, or drop --strict to skip it")
                    warn(f"{result.message}; skipped")
                    skipped[result.error] += 1
                    continue
                crops.extend(result.crops)
                for reason, count in result.skipped.items():
                    skipped[reason] += count
        if not crops:
            raise PartcliError(
                f"{src}: no human or vehicle object with at least --min-area {min_area} pixels survived "
                f"the filters (skipped: {skipped}); check the folder or lower --min-area"
            )
        splits = stratified_split([c.label for c in crops], seed)
        for c, split in zip(track(crops, "writing samples"), splits, strict=True):
            writer.add(split, c.stem, c.label, image=staging / "images" / f"{c.stem}.png",
                       mask=staging / "masks" / f"{c.stem}.png")
        shutil.rmtree(staging)
        source = {
            "command": "prepare cityscapes",
            "src": str(src.resolve()),
            "protocol": protocol,
            "min_area": min_area,
            "pad": pad,
            "seed": seed,
            "skipped": skipped,
        }
        return writer.finish(source=source)


def _check_options(protocol: str, min_area: int, pad: float | None, seed: int, workers: int | None) -> None:
    if protocol not in PROTOCOLS:
        raise PartcliError(f"--protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    if min_area < 0:
        raise PartcliError(f"--min-area {min_area}: expected a number of pixels >= 0")
    if pad is not None and not pad >= 0:  # also refuses NaN
        raise PartcliError(f"--pad {pad}: expected a fraction >= 0 (e.g. 0.2 for 20% of the object's side)")
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


def crop_objects(pair: ImagePair, *, staging: Path, protocol: str, min_area: int, pad: float,
                 seed: int) -> ImageResult:
    """Crop the samples of one image into ``staging``; runs in a worker process.

    Each object's random draws come from an RNG seeded by (seed, image, sid, iid), so the crops do not depend
    on the order in which the workers process the images.
    """
    try:
        with Image.open(pair.image) as im:
            im.load()
            image = im if im.mode == "RGB" else im.convert("RGB")  # cropped as it is: no copy to numpy
    except (OSError, SyntaxError, ValueError) as exc:
        why = exc.__class__.__name__
        return ImageResult(error="undecodable_image", message=f"{pair.image}: image does not decode ({why})")
    image_key = zlib.crc32(pair.stem.encode())

    def rng_for(c: Candidate) -> np.random.Generator:
        return np.random.default_rng([seed, image_key, c.sid, c.iid if c.iid >= 0 else 1000])  # iids < 1000

    try:
        with Image.open(pair.annotation) as im:
            uids = np.asarray(im)
        if uids.shape[::-1] != image.size:
            raise ValueError(f"size {uids.shape[::-1]} differs from its image's {image.size}")
        plan = plan_crops(uids, protocol=protocol, min_area=min_area, pad=pad, rng_for=rng_for)
    except (OSError, SyntaxError, ValueError) as exc:
        why = str(exc) if isinstance(exc, ValueError) else exc.__class__.__name__
        message = f"{pair.annotation}: not a panoptic-parts label map ({why})"
        return ImageResult(error="undecodable_annotation", message=message)

    result = ImageResult(skipped={"first_instance": plan.first_instance, "small": plan.small,
                                  "occluded": plan.occluded})
    for kind in ("images", "masks"):
        (staging / kind / pair.stem).parent.mkdir(parents=True, exist_ok=True)
    for planned in plan.crops:
        c = planned.candidate
        stem = f"{pair.stem}_{c.sid}_{c.iid:03d}" if c.iid >= 0 else f"{pair.stem}_{c.sid}_crowd"
        w = planned.window  # PIL fills what lies outside the image with black
        crop = image.crop((w.left, w.top, w.left + w.width, w.top + w.height))
        crop.save(staging / "images" / f"{stem}.png", format="PNG", **CROP_PNG)
        # part ids 0..9 as uint8: the prepared dataset's mask format for K < 255 (DatasetWriter.add moves it)
        Image.fromarray(np.ascontiguousarray(planned.mask, dtype=np.uint8)).save(
            staging / "masks" / f"{stem}.png", format="PNG", **CROP_PNG)
        result.crops.append(Crop(stem, c.label))
    return result
