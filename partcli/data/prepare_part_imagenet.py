"""``partcli prepare part-imagenet``: the Part-ImageNet release (COCO json + JPEGs) to a prepared dataset.

The release splits its 158 ImageNet classes into disjoint train/val/test groups. Like the paper (App. A) we
ignore that split: every annotated image of ``train.json``, ``val.json`` and ``test.json`` is pooled and
re-partitioned i.i.d., per class, 80/10/10 with a seed.

Classes are the 11 supercategories in alphabetical order; parts are the json categories ordered by class
and then by category id (part ids 1..K, 0 is background), named "Class/Part", e.g. "Quadruped/Head".
An image's class is the supercategory of its annotations; where an image carries parts of several classes
(rare), the class with the largest annotated area wins and the image is counted as ``mixed_class``.
Overlapping annotations are painted largest-area first, so a small part drawn over a large one stays
visible. Images are copied byte for byte; masks are lossless PNGs.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from partcli.data.contract import SPLITS, DatasetInfo, DatasetWriter, Part, mask_dtype, prepare_output_dir, stratified_split
from partcli.errors import PartcliError
from partcli.progress import track, warn

NAME = "part-imagenet"
ANNOTATION_FILES = tuple(f"{split}.json" for split in SPLITS)
IMAGE_FOLDERS = ("JPEGImages", "images")


@dataclass
class _Entry:
    """One image of the pooled json files, before its file is opened."""

    file_name: str
    path: Path
    annotations: list[dict[str, Any]]


@dataclass
class _Region:
    """One decoded annotation: a compressed RLE at the image's size and the part id it paints."""

    part_id: int
    area: int
    order: tuple[int, int]  # (category id, annotation id): a deterministic tie-break between equal areas
    rle: dict[str, Any]


@dataclass
class _Sample:
    path: Path
    stem: str
    label: int
    size: tuple[int, int]  # (H, W)
    regions: list[_Region]


def find_annotation_files(src: Path) -> dict[str, Path]:
    """The release's json files by split, looked up in ``src``, ``src/annotations`` and ``src/annotations/<split>``."""
    found = {}
    for split, file in zip(SPLITS, ANNOTATION_FILES):
        for folder in (src, src / "annotations", src / "annotations" / split):
            if (folder / file).is_file():
                found[split] = folder / file
                break
    if not found:
        raise PartcliError(
            f"{src}: no Part-ImageNet annotations found; expected {', '.join(ANNOTATION_FILES)} "
            f"in {src} or {src / 'annotations'}"
        )
    return found


def load_coco(path: Path) -> dict[str, Any]:
    """Read one COCO json; PartcliError naming the file when it does not parse or lacks a COCO section."""
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PartcliError(f"{path}: not a readable JSON file ({exc.__class__.__name__})") from None
    missing = [key for key in ("images", "annotations", "categories") if not isinstance(doc, dict) or not isinstance(doc.get(key), list)]
    if missing:
        raise PartcliError(f"{path}: not a COCO annotation file; missing list(s) {', '.join(missing)}")
    return doc


def part_name(category: str, supercategory: str) -> str:
    """"Quadruped Head" under "Quadruped" -> "Quadruped/Head" (a name without the class prefix is kept whole)."""
    short = re.sub(rf"^{re.escape(supercategory)}[\s_/-]+", "", category.strip(), flags=re.IGNORECASE)
    return f"{supercategory}/{short or category.strip()}"


def build_taxonomy(docs: dict[Path, dict[str, Any]]) -> tuple[list[str], list[Part], dict[int, int]]:
    """Classes, parts and the category id -> part id map from the union of the files' categories.

    Raises PartcliError when two files give the same category id a different name or supercategory.
    """
    categories: dict[int, tuple[str, str, Path]] = {}
    for path, doc in docs.items():
        for cat in doc["categories"]:
            try:
                key, value = int(cat["id"]), (str(cat["name"]), str(cat["supercategory"]), path)
            except (KeyError, TypeError, ValueError) as exc:
                raise PartcliError(f"{path}: category {cat!r} lacks a valid id, name or supercategory ({exc})") from None
            seen = categories.setdefault(key, value)
            if seen[:2] != value[:2]:
                raise PartcliError(
                    f"{path}: category id {key} is {value[1]}/{value[0]!r} but {seen[2]} has {seen[1]}/{seen[0]!r}; "
                    "the annotation files come from different releases"
                )
    if not categories:
        raise PartcliError(f"{', '.join(map(str, docs))}: no categories defined")
    classes = sorted({sup for _, sup, _ in categories.values()})
    ordered = sorted(categories, key=lambda cid: (classes.index(categories[cid][1]), cid))
    parts = [Part(part_name(categories[cid][0], categories[cid][1]), categories[cid][1]) for cid in ordered]
    return classes, parts, {cid: pid for pid, cid in enumerate(ordered, start=1)}


def image_roots(src: Path, split: str) -> list[Path]:
    """Folders that may hold the images of ``split``'s json, the split's own folders first."""
    others = [s for s in SPLITS if s != split]
    names = [f"images/{split}", split, *IMAGE_FOLDERS, *(f"images/{s}" for s in others), *others]
    return [src / n for n in names if (src / n).is_dir()] + [src]


def find_image(roots: list[Path], file_name: str) -> Path | None:
    """The file of ``file_name`` (with or without its ``<wnid>/`` folder) under the first root that has it."""
    rel = Path(file_name.replace("\\", "/"))
    wnid = rel.name.split("_")[0]
    for root in roots:
        for candidate in (root / rel, root / wnid / rel.name, root / rel.name):
            if candidate.is_file():
                return candidate
    return None


def collect_entries(src: Path, docs: dict[str, tuple[Path, dict[str, Any]]], known: set[int], skipped: dict[str, int]) -> list[_Entry]:
    """Pool the images of all files (keyed by file name), attach their annotations and find their files."""
    pooled: dict[str, list[dict[str, Any]]] = {}
    split_of: dict[str, str] = {}
    for split, (path, doc) in docs.items():
        try:
            names = {img["id"]: str(img["file_name"]) for img in doc["images"]}
            for ann in doc["annotations"]:
                if ann["category_id"] not in known:
                    raise PartcliError(f"{path}: annotation {ann.get('id')} has unknown category_id {ann['category_id']}")
                name = names.get(ann["image_id"])
                if name is None:
                    skipped["bad_annotation"] += 1
                    continue
                if "segmentation" not in ann:
                    raise PartcliError(f"{path}: annotation {ann.get('id')} has no segmentation")
                pooled.setdefault(name, []).append(ann)
        except (KeyError, TypeError) as exc:
            raise PartcliError(f"{path}: malformed COCO entry, missing or invalid field {exc}") from None
        for name in names.values():
            pooled.setdefault(name, [])
            split_of.setdefault(name, split)
    roots = {split: image_roots(src, split) for split in docs}
    entries, missing = [], []
    for name in sorted(pooled):
        if not pooled[name]:
            skipped["no_annotation"] += 1
            continue
        found = find_image(roots[split_of[name]], name)
        if found is None:
            missing.append(name)
            continue
        entries.append(_Entry(name, found, pooled[name]))
    if missing:
        skipped["missing_image"] = len(missing)
        warn(f"{len(missing)} annotated image(s) not found under {src} (e.g. {missing[0]}): skipped")
    return entries


def to_rle(segmentation: Any, height: int, width: int) -> dict[str, Any] | None:
    """A COCO segmentation (polygons, compressed or uncompressed RLE) as one compressed RLE; None if unusable."""
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
        if not polygons:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        if list(segmentation["size"]) != [height, width]:
            return None
        if isinstance(segmentation["counts"], list):
            # pycocotools does not bound-check RLE counts: a wrong total would write outside the mask
            if sum(segmentation["counts"]) != height * width:
                return None
            return mask_utils.frPyObjects(segmentation, height, width)
        counts = segmentation["counts"]
        return {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
    return None


def open_image(path: Path) -> tuple[int, int] | None:
    """Fully decode the image at ``path`` and return its (H, W), or None when it does not decode."""
    try:
        with Image.open(io.BytesIO(path.read_bytes())) as im:
            im.load()
            return im.height, im.width
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


def decode_regions(entry: _Entry, size: tuple[int, int], part_of: dict[int, int], skipped: dict[str, int]) -> list[_Region]:
    """The entry's usable annotations at the image's (H, W); empty or malformed ones count as ``bad_annotation``."""
    regions = []
    for ann in entry.annotations:
        try:
            rle = to_rle(ann["segmentation"], *size)
        except (TypeError, ValueError, IndexError):
            rle = None
        area = int(mask_utils.area(rle)) if rle is not None else 0
        if area == 0:
            skipped["bad_annotation"] += 1
            continue
        regions.append(_Region(part_of[ann["category_id"]], area, (ann["category_id"], int(ann.get("id", 0))), rle))
    return regions


def dominant_class(regions: list[_Region], part_class: list[int]) -> tuple[int, bool]:
    """The class with the largest annotated area (ties: lowest class index) and whether several classes occur."""
    areas: dict[int, int] = {}
    for r in regions:
        areas[part_class[r.part_id - 1]] = areas.get(part_class[r.part_id - 1], 0) + r.area
    label = min(areas, key=lambda c: (-areas[c], c))
    return label, len(areas) > 1


def paint_mask(regions: list[_Region], size: tuple[int, int], num_parts: int) -> np.ndarray:
    """H×W part ids; larger regions are painted first so smaller, overlapping parts stay on top."""
    mask = np.zeros(size, dtype=mask_dtype(num_parts))
    for r in sorted(regions, key=lambda r: (-r.area, r.order)):
        mask[mask_utils.decode(r.rle).astype(bool)] = r.part_id
    return mask


def unique_stem(name: str, used: set[str]) -> str:
    stem, n = Path(name.replace("\\", "/")).stem, 1
    candidate = stem
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}"
    used.add(candidate)
    return candidate


def prepare_part_imagenet(src: Path, out: Path, *, seed: int = 0, overwrite: bool = False, strict: bool = False) -> DatasetInfo:
    """Convert the Part-ImageNet release at ``src`` into a prepared dataset at ``out`` (see the module docstring).

    Annotated images whose file is missing are skipped with a warning; so are undecodable images unless
    ``strict``, which makes them an error. Images without a usable annotation are skipped too. The skip
    counts go to ``source.skipped`` in dataset.yaml (``mixed_class`` counts kept images, see above).
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise PartcliError(
            f"{src}: not a folder; expected the Part-ImageNet release (images and {', '.join(ANNOTATION_FILES)})"
        )
    prepare_output_dir(out, overwrite)
    docs = {split: (path, load_coco(path)) for split, path in find_annotation_files(src).items()}
    classes, parts, part_of = build_taxonomy({path: doc for path, doc in docs.values()})
    part_class = [classes.index(p.cls) for p in parts]
    skipped = {"missing_image": 0, "undecodable_image": 0, "no_annotation": 0, "mixed_class": 0, "bad_annotation": 0}
    entries = collect_entries(src, docs, set(part_of), skipped)

    with DatasetWriter(out, classes, parts, name=NAME, overwrite=overwrite) as writer:
        samples, used, undecodable = [], set(), []
        for entry in track(entries, "part-imagenet: reading images"):
            size = open_image(entry.path)
            if size is None:
                if strict:
                    raise PartcliError(f"{entry.path}: image does not decode (drop --strict to skip such images)")
                undecodable.append(entry.path)
                continue
            regions = decode_regions(entry, size, part_of, skipped)
            if not regions:
                skipped["no_annotation"] += 1
                continue
            label, mixed = dominant_class(regions, part_class)
            skipped["mixed_class"] += mixed
            samples.append(_Sample(entry.path, unique_stem(entry.file_name, used), label, size, regions))
        if undecodable:
            skipped["undecodable_image"] = len(undecodable)
            warn(f"{len(undecodable)} image(s) do not decode (e.g. {undecodable[0]}): skipped")
        if skipped["mixed_class"]:
            warn(f"{skipped['mixed_class']} image(s) have parts of several classes: labelled with the largest-area class")
        if skipped["bad_annotation"]:
            warn(f"{skipped['bad_annotation']} annotation(s) were empty, malformed or did not match their image: ignored")

        splits = stratified_split([s.label for s in samples], seed)
        for sample, split in track(list(zip(samples, splits)), "part-imagenet: writing"):
            writer.add(
                split,
                sample.stem,
                sample.label,
                image=sample.path.read_bytes(),
                image_ext=sample.path.suffix.lower() or ".jpg",
                mask=paint_mask(sample.regions, sample.size, len(parts)),
            )
        source = {"command": "prepare part-imagenet", "src": str(src.resolve()), "seed": seed, "strict": strict, "skipped": skipped}
        return writer.finish(source=source)
